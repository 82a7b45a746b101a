// Accessibility checks (axe-core via @sa11y/jest) for every LWC test: `await expect(el).toBeAccessible()`.
const { registerSa11yMatcher } = require('@sa11y/jest');

registerSa11yMatcher();
