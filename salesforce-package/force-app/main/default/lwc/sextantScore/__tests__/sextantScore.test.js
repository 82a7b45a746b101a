import { createElement } from 'lwc';
import { getRecord } from 'lightning/uiRecordApi';
import requestRescore from '@salesforce/apex/SextantScoreController.requestRescore';
import SextantScore, { riskBand } from 'c/sextantScore';

jest.mock('@salesforce/apex/SextantScoreController.requestRescore', () => ({ default: jest.fn() }), { virtual: true });

const RECORD_ID = '0015g0000000001AAA';

function mount() {
    const element = createElement('c-sextant-score', { is: SextantScore });
    element.recordId = RECORD_ID;
    document.body.appendChild(element);
    return element;
}

function record(score, version = 'churn-v3') {
    return {
        apiName: 'Account',
        id: RECORD_ID,
        fields: {
            Churn_Score__c: { value: score },
            Sextant_Model_Version__c: { value: version },
            Sextant_Scored_At__c: { value: '2026-11-23T10:00:00.000Z' }
        }
    };
}

const flush = () => Promise.resolve();

describe('c-sextant-score', () => {
    afterEach(() => {
        while (document.body.firstChild) {
            document.body.removeChild(document.body.firstChild);
        }
        jest.clearAllMocks();
    });

    it('shows the score as a percentage with its risk band and model', async () => {
        const element = mount();
        getRecord.emit(record(0.8234));
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('.score').textContent).toBe('82%');
        expect(root.querySelector('.band').textContent).toBe('High churn risk');
        expect(root.querySelector('.band').classList).toContain('band-high');
        expect(root.querySelector('.meta').textContent).toContain('churn-v3');
    });

    it('says when the account is not scored yet', async () => {
        const element = mount();
        getRecord.emit(record(null, null));
        await flush();
        expect(element.shadowRoot.querySelector('.unscored').textContent).toBe('Not scored yet.');
        expect(element.shadowRoot.querySelector('.score')).toBeNull();
    });

    it('shows the load error', async () => {
        const element = mount();
        getRecord.error({ message: 'insufficient access' });
        await flush();
        expect(element.shadowRoot.querySelector('.error').textContent).toBeTruthy();
    });

    it('requests a re-score for this record', async () => {
        requestRescore.mockResolvedValue('7075g000000ABCD');
        const element = mount();
        getRecord.emit(record(0.1));
        await flush();
        element.shadowRoot.querySelector('lightning-button').click();
        await flush();
        await flush();
        expect(requestRescore).toHaveBeenCalledWith({ accountId: RECORD_ID });
        expect(element.shadowRoot.querySelector('.rescore-message').textContent).toContain('requested');
    });

    it('reports a failed re-score', async () => {
        requestRescore.mockRejectedValue({ body: { message: 'Callout limit reached' } });
        const element = mount();
        getRecord.emit(record(0.5));
        await flush();
        element.shadowRoot.querySelector('lightning-button').click();
        await flush();
        await flush();
        expect(element.shadowRoot.querySelector('.rescore-message').textContent).toBe('Callout limit reached');
    });

    it('bands scores like the Apex controller', () => {
        expect(riskBand(undefined)).toBe('unscored');
        expect(riskBand(0.6)).toBe('high');
        expect(riskBand(0.3)).toBe('medium');
        expect(riskBand(0.29)).toBe('low');
    });
});
