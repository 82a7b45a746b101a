/*
 * Jest for the LWC, with two additions:
 *  - Custom Labels resolve to their real text from labels/CustomLabels.labels-meta.xml (sfdx-lwc-jest
 *    would otherwise give "c.Label_Name"), so tests read what users read. Each label becomes a small
 *    module under node_modules/.cache; a label missing from the XML falls back to "c.Name" and fails
 *    the text assertions (scripts/check_package.py also refuses it).
 *  - @sa11y/jest's toBeAccessible() matcher (axe-core rules) in every test.
 */
const fs = require('fs');
const path = require('path');
const { jestConfig } = require('@salesforce/sfdx-lwc-jest/config');

const LABELS_XML = path.join(__dirname, 'force-app/main/default/labels/CustomLabels.labels-meta.xml');
const LABELS_DIR = path.join(__dirname, 'node_modules/.cache/sextant-labels');

function unescapeXml(text) {
    return text
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"')
        .replace(/&apos;/g, "'")
        .replace(/&amp;/g, '&');
}

function labelModules() {
    fs.mkdirSync(LABELS_DIR, { recursive: true });
    const xml = fs.readFileSync(LABELS_XML, 'utf8');
    const mapper = {};
    for (const block of xml.match(/<labels>[\s\S]*?<\/labels>/g) || []) {
        const name = /<fullName>([^<]+)<\/fullName>/.exec(block)[1];
        const value = unescapeXml((/<value>([\s\S]*?)<\/value>/.exec(block) || ['', ''])[1]);
        const file = path.join(LABELS_DIR, `${name}.js`);
        fs.writeFileSync(file, `module.exports = { default: ${JSON.stringify(value)} };\n`);
        mapper[`^@salesforce/label/c\\.${name}$`] = file;
    }
    return mapper;
}

module.exports = {
    ...jestConfig,
    moduleNameMapper: { ...(jestConfig.moduleNameMapper || {}), ...labelModules() },
    setupFilesAfterEnv: [...(jestConfig.setupFilesAfterEnv || []), '<rootDir>/jest.setup.js'],
    modulePathIgnorePatterns: ['<rootDir>/.localdevserver']
};
