import { createElement } from 'lwc';
import { getRecord } from 'lightning/uiRecordApi';
import SextantCaseSentiment, { LABELS, intensityText, sentimentText } from 'c/sextantCaseSentiment';

const RECORD_ID = '5005g0000000001AAA';

function mount() {
    const element = createElement('c-sextant-case-sentiment', { is: SextantCaseSentiment });
    element.recordId = RECORD_ID;
    document.body.appendChild(element);
    return element;
}

/** A Case record as Lightning Data Service gives it; `account` (or null) is the Account lookup. */
function record(values, account) {
    const fields = {};
    Object.entries(values).forEach(([name, value]) => {
        fields[name] = { value };
    });
    if (account !== undefined) {
        const accountFields = {};
        Object.entries(account || {}).forEach(([name, value]) => {
            accountFields[name] = { value };
        });
        fields.Account = { value: account ? { apiName: 'Account', fields: accountFields } : null };
    }
    return { apiName: 'Case', id: RECORD_ID, fields };
}

const JUDGED = {
    Sextant_Sentiment__c: 'negative',
    Sextant_Sentiment_Score__c: -0.8,
    Sextant_Sentiment_Model__c: 'sentiment-v3',
    Sextant_Sentiment_At__c: '2026-11-23T10:00:00.000Z'
};

const flush = async () => {
    for (let i = 0; i < 3; i++) {
        // eslint-disable-next-line no-await-in-loop
        await Promise.resolve();
    }
};
const squash = (value) => value.replace(/\s+/g, ' ').trim();
const text = (root, selector) => {
    const node = root.querySelector(selector);
    return node ? squash(node.textContent) : null;
};

describe('c-sextant-case-sentiment', () => {
    afterEach(() => {
        while (document.body.firstChild) {
            document.body.removeChild(document.body.firstChild);
        }
        jest.clearAllMocks();
    });

    it('shows a loading state until the record arrives', async () => {
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('.loading[role="status"]')).not.toBeNull();
        expect(root.querySelector('lightning-spinner').alternativeText).toBe('Loading the sentiment…');
        expect(root.querySelector('.result')).toBeNull();
        await expect(element).toBeAccessible();
    });

    it('shows the sentiment, its intensity, the model, when, and the account churn risk', async () => {
        const element = mount();
        getRecord.emit(record(JUDGED, { Churn_Score__c: 0.8234, Sextant_Churn_Band__c: 'high' }));
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('lightning-card').title).toBe('Customer sentiment');
        expect(text(root, '.sentiment')).toBe('Negative sentiment');
        expect(root.querySelector('.sentiment').classList).toContain('sentiment-negative');
        expect(text(root, '.intensity')).toBe('Intensity -0.80 (from -1, very negative, to 1, very positive)');
        expect(text(root, '.model')).toBe('Model sentiment-v3');
        expect(root.querySelector('.judged-at lightning-formatted-date-time').value).toBe('2026-11-23T10:00:00.000Z');
        expect(text(root, '.account-churn')).toBe('Account churn risk: 82%, High churn risk');
        expect(root.querySelector('.not-judged')).toBeNull();
        expect(root.querySelector('.result').getAttribute('aria-live')).toBe('polite');
        await expect(element).toBeAccessible();
    });

    it('shows a positive sentiment in its own style', async () => {
        const element = mount();
        getRecord.emit(record({ ...JUDGED, Sextant_Sentiment__c: 'positive', Sextant_Sentiment_Score__c: 0.7 }, null));
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.sentiment')).toBe('Positive sentiment');
        expect(root.querySelector('.sentiment').classList).toContain('sentiment-positive');
        expect(text(root, '.intensity')).toBe('Intensity +0.70 (from -1, very negative, to 1, very positive)');
        expect(root.querySelector('.account-churn')).toBeNull();
    });

    it('says that the case has no sentiment yet, and still shows the account churn risk', async () => {
        const element = mount();
        getRecord.emit(
            record(
                {
                    Sextant_Sentiment__c: null,
                    Sextant_Sentiment_Score__c: null,
                    Sextant_Sentiment_Model__c: null,
                    Sextant_Sentiment_At__c: null
                },
                { Churn_Score__c: 0.1, Sextant_Churn_Band__c: null }
            )
        );
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.not-judged')).toBe(
            'No sentiment yet: Sextant judges the Subject and Description when the case is saved.'
        );
        expect(root.querySelector('.sentiment')).toBeNull();
        expect(root.querySelector('.intensity')).toBeNull();
        expect(text(root, '.account-churn')).toBe('Account churn risk: 10%');
        await expect(element).toBeAccessible();
    });

    it('loses only the lines of fields the user cannot read', async () => {
        const element = mount();
        // optionalFields: fields without access are left out of the record, not an error.
        getRecord.emit(record({ Sextant_Sentiment__c: 'neutral' }));
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.sentiment')).toBe('Neutral sentiment');
        expect(root.querySelector('.intensity')).toBeNull();
        expect(root.querySelector('.model')).toBeNull();
        expect(root.querySelector('.judged-at')).toBeNull();
        expect(root.querySelector('.account-churn')).toBeNull();
    });

    it('shows the load error readably', async () => {
        const element = mount();
        getRecord.error({ message: 'Case is not accessible' });
        await flush();
        const root = element.shadowRoot;
        const error = root.querySelector('.error');
        expect(error.getAttribute('role')).toBe('alert');
        expect(squash(error.textContent)).toBe('Could not load the sentiment: Case is not accessible');
        expect(root.querySelector('.loading')).toBeNull();
        await expect(element).toBeAccessible();
    });

    it('takes every text from a label', () => {
        Object.values(LABELS).forEach((value) => expect(value).not.toMatch(/^c\./));
        expect(sentimentText('negative')).toBe('Negative sentiment');
        expect(sentimentText('mixed')).toBe('mixed sentiment');
        expect(intensityText(0)).toBe('Intensity 0.00 (from -1, very negative, to 1, very positive)');
    });
});
