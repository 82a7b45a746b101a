const lwcConfig = require('@salesforce/eslint-config-lwc');
const jestPlugin = require('eslint-plugin-jest');
const globals = require('globals');

module.exports = [
    { ignores: ['node_modules/**', '.sfdx/**', '.sf/**', 'coverage/**'] },
    ...lwcConfig.configs.recommended.map((c) => ({ ...c, files: ['force-app/**/lwc/**/*.js'] })),
    {
        files: ['force-app/**/lwc/**/__tests__/**/*.js'],
        plugins: { jest: jestPlugin },
        languageOptions: { globals: { ...globals.node, ...jestPlugin.environments.globals.globals } },
        rules: { '@lwc/lwc/no-unexpected-wire-adapter-usages': 'off' }
    }
];
