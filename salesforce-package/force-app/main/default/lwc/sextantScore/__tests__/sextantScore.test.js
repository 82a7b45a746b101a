import { createElement } from 'lwc';
import { getRecord, notifyRecordUpdateAvailable } from 'lightning/uiRecordApi';
import getContext from '@salesforce/apex/SextantScoreController.getContext';
import requestRescore from '@salesforce/apex/SextantScoreController.requestRescore';
import SextantScore, {
    POLL_ATTEMPTS,
    POLL_INTERVAL_MS,
    bandClass,
    bandLabel,
    direction,
    outcomeText,
    parseFactors,
    readableError
} from 'c/sextantScore';

jest.mock(
    '@salesforce/apex/SextantScoreController.getContext',
    () => {
        const { createApexTestWireAdapter } = require('@salesforce/sfdx-lwc-jest');
        return { default: createApexTestWireAdapter(jest.fn()) };
    },
    { virtual: true }
);
jest.mock('@salesforce/apex/SextantScoreController.requestRescore', () => ({ default: jest.fn() }), { virtual: true });

const RECORD_ID = '0015g0000000001AAA';

const FACTORS = JSON.stringify([
    { factor: 'recency_days', direction: 'up', text: 'No order for 120 days' },
    { factor: 'frequency', direction: 'down', text: '2 orders this year' }
]);

function mount() {
    const element = createElement('c-sextant-score', { is: SextantScore });
    element.recordId = RECORD_ID;
    document.body.appendChild(element);
    return element;
}

function record(values) {
    const fields = {};
    Object.entries(values).forEach(([name, value]) => {
        fields[name] = { value };
    });
    return { apiName: 'Account', id: RECORD_ID, fields };
}

const SCORED = {
    Churn_Score__c: 0.8234,
    Sextant_Churn_Band__c: 'high',
    Sextant_Model_Version__c: 'churn-v4',
    Sextant_Scored_At__c: '2026-11-23T10:00:00.000Z',
    Sextant_Top_Factors__c: FACTORS,
    Sextant_CLV__c: 1234.5,
    Sextant_P_Alive__c: 0.42,
    Sextant_Next_Best_Action__c: 'Call the account owner',
    Sextant_NBA_Reason__c: 'High churn risk on a valuable account',
    Sextant_NBA_Expected_Value__c: 310.25,
    Sextant_Score_Status__c: 'scored',
    Sextant_Status_Message__c: null,
    Sextant_Status_At__c: '2026-11-23T10:00:00.000Z'
};

// Lets wire emissions, re-renders and awaited promises settle.
const flush = async () => {
    for (let i = 0; i < 3; i++) {
        // eslint-disable-next-line no-await-in-loop
        await Promise.resolve();
    }
};
const text = (root, selector) => {
    const node = root.querySelector(selector);
    return node ? node.textContent : null;
};

describe('c-sextant-score', () => {
    afterEach(() => {
        while (document.body.firstChild) {
            document.body.removeChild(document.body.firstChild);
        }
        jest.clearAllMocks();
    });

    it('shows a loading state, not "Not scored yet", until the record arrives', async () => {
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('.loading')).not.toBeNull();
        expect(root.querySelector('lightning-spinner')).not.toBeNull();
        expect(root.querySelector('.unscored')).toBeNull();
        expect(root.querySelector('.score')).toBeNull();

        getRecord.emit(record({ ...SCORED }));
        await flush();
        expect(root.querySelector('.loading')).toBeNull();
        expect(text(root, '.score')).toBe('82%');
    });

    it('shows score, band, top factors, CLV, P(alive) and next best action', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.score')).toBe('82%');
        expect(text(root, '.band')).toBe('High churn risk');
        expect(root.querySelector('.band').classList).toContain('band-high');
        const factors = root.querySelectorAll('.factors li');
        expect(factors).toHaveLength(2);
        expect(factors[0].textContent).toBe('▲ No order for 120 days');
        expect(factors[0].classList).toContain('factor-up');
        expect(factors[1].textContent).toBe('▼ 2 orders this year');
        expect(root.querySelector('.clv lightning-formatted-number').value).toBe(1234.5);
        expect(text(root, '.p-alive')).toBe('Still active: 42%');
        expect(text(root, '.nba-action')).toBe('Call the account owner');
        expect(text(root, '.nba-reason')).toBe('High churn risk on a valuable account');
        expect(root.querySelector('.nba-value lightning-formatted-number').value).toBe(310.25);
        expect(text(root, '.meta')).toContain('churn-v4');
        expect(root.querySelector('.outcome')).toBeNull();
        expect(root.querySelector('.unscored')).toBeNull();
    });

    it('shows a bare score when the optional fields are empty', async () => {
        const element = mount();
        getRecord.emit(
            record({ Churn_Score__c: 0.1, Sextant_Churn_Band__c: 'low', Sextant_Score_Status__c: 'scored' })
        );
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.score')).toBe('10%');
        expect(root.querySelector('.band').classList).toContain('band-low');
        expect(root.querySelector('.factors')).toBeNull();
        expect(root.querySelector('.clv')).toBeNull();
        expect(root.querySelector('.p-alive')).toBeNull();
        expect(root.querySelector('.nba')).toBeNull();
    });

    it('says when the account is not scored yet', async () => {
        const element = mount();
        getRecord.emit(record({ Churn_Score__c: null, Sextant_Score_Status__c: null }));
        await flush();
        expect(text(element.shadowRoot, '.unscored')).toBe('Not scored yet.');
        expect(element.shadowRoot.querySelector('.score')).toBeNull();
    });

    it('explains the gateway outcome not_found', async () => {
        const element = mount();
        getRecord.emit(
            record({
                Churn_Score__c: null,
                Sextant_Score_Status__c: 'not_found',
                Sextant_Status_At__c: '2026-11-23T10:00:00.000Z'
            })
        );
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.outcome-text')).toContain("connector's next sync");
        expect(root.querySelector('.unscored')).toBeNull();
    });

    it('explains no_history and keeps the last known score visible', async () => {
        const element = mount();
        getRecord.emit(record({ ...SCORED, Sextant_Score_Status__c: 'no_history' }));
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.outcome-text')).toBe(
            'No order history yet: Sextant scores an account after its first order.'
        );
        expect(text(root, '.score')).toBe('82%');
    });

    it('shows a final scoring failure with its code and message', async () => {
        const element = mount();
        getRecord.emit(
            record({
                Churn_Score__c: null,
                Sextant_Score_Status__c: 'unauthorized',
                Sextant_Status_Message__c: 'Scoring failed after 1 attempt(s): token expired'
            })
        );
        await flush();
        expect(text(element.shadowRoot, '.outcome-text')).toBe(
            'The latest scoring failed (unauthorized): Scoring failed after 1 attempt(s): token expired'
        );
    });

    it('shows the load error readably', async () => {
        const element = mount();
        getRecord.error({ message: 'Sextant Churn Score is not accessible' });
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.error')).toBe('Could not load the churn score: Sextant Churn Score is not accessible');
        expect(root.querySelector('.loading')).toBeNull();
        expect(root.querySelector('.unscored')).toBeNull();
    });

    it('shows the re-score button only to users with the permission', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getContext.emit({ enabled: true, canRescore: false });
        await flush();
        expect(element.shadowRoot.querySelector('lightning-button')).toBeNull();
        getContext.emit({ enabled: true, canRescore: true });
        await flush();
        expect(element.shadowRoot.querySelector('lightning-button')).not.toBeNull();
    });

    it('says when Sextant is switched off', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getContext.emit({ enabled: false, canRescore: false });
        await flush();
        expect(text(element.shadowRoot, '.switched-off')).toContain('switched off');
        expect(element.shadowRoot.querySelector('lightning-button')).toBeNull();
    });

    it('shows a settings error from the controller', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getContext.error({ message: 'Sextant is misconfigured: Nightly_Cron__c is empty' });
        await flush();
        expect(text(element.shadowRoot, '.context-error')).toContain('Nightly_Cron__c is empty');
    });

    it('requests a re-score for this record', async () => {
        requestRescore.mockResolvedValue(undefined);
        const element = mount();
        getRecord.emit(record(SCORED));
        getContext.emit({ enabled: true, canRescore: true });
        await flush();
        element.shadowRoot.querySelector('lightning-button').click();
        await flush();
        expect(requestRescore).toHaveBeenCalledWith({ accountId: RECORD_ID });
        expect(text(element.shadowRoot, '.rescore-message')).toContain('requested');
        expect(element.shadowRoot.querySelector('.rescore-error')).toBeNull();
    });

    it('refreshes the card until the new score arrives', async () => {
        jest.useFakeTimers();
        try {
            requestRescore.mockResolvedValue(undefined);
            const element = mount();
            getRecord.emit(record(SCORED));
            getContext.emit({ enabled: true, canRescore: true });
            await flush();
            element.shadowRoot.querySelector('lightning-button').click();
            await flush();
            expect(text(element.shadowRoot, '.rescore-message')).toContain('updates when it arrives');

            jest.advanceTimersByTime(POLL_INTERVAL_MS);
            expect(notifyRecordUpdateAvailable).toHaveBeenCalledWith([{ recordId: RECORD_ID }]);

            getRecord.emit(
                record({ ...SCORED, Churn_Score__c: 0.31, Sextant_Status_At__c: '2026-11-24T09:00:00.000Z' })
            );
            await flush();
            expect(text(element.shadowRoot, '.score')).toBe('31%');
            expect(text(element.shadowRoot, '.rescore-message')).toBe('Updated with the new result.');
            jest.advanceTimersByTime(POLL_INTERVAL_MS * 3);
            expect(notifyRecordUpdateAvailable).toHaveBeenCalledTimes(1);
        } finally {
            jest.useRealTimers();
        }
    });

    it('stops asking after two minutes and says the score has not arrived', async () => {
        jest.useFakeTimers();
        try {
            requestRescore.mockResolvedValue(undefined);
            const element = mount();
            getRecord.emit(record(SCORED));
            getContext.emit({ enabled: true, canRescore: true });
            await flush();
            element.shadowRoot.querySelector('lightning-button').click();
            await flush();
            jest.advanceTimersByTime(POLL_INTERVAL_MS * (POLL_ATTEMPTS + 3));
            await flush();
            expect(notifyRecordUpdateAvailable).toHaveBeenCalledTimes(POLL_ATTEMPTS);
            expect(text(element.shadowRoot, '.rescore-message')).toContain('has not arrived yet');
        } finally {
            jest.useRealTimers();
        }
    });

    it('stops asking when the card is removed', async () => {
        jest.useFakeTimers();
        try {
            requestRescore.mockResolvedValue(undefined);
            const element = mount();
            getRecord.emit(record(SCORED));
            getContext.emit({ enabled: true, canRescore: true });
            await flush();
            element.shadowRoot.querySelector('lightning-button').click();
            await flush();
            document.body.removeChild(element);
            jest.advanceTimersByTime(POLL_INTERVAL_MS * (POLL_ATTEMPTS + 1));
            expect(notifyRecordUpdateAvailable).not.toHaveBeenCalled();
        } finally {
            jest.useRealTimers();
        }
    });

    it('reports a failed re-score readably', async () => {
        requestRescore.mockRejectedValue({
            body: { message: 'Sextant scoring is switched off by your administrator' }
        });
        const element = mount();
        getRecord.emit(record(SCORED));
        getContext.emit({ enabled: true, canRescore: true });
        await flush();
        element.shadowRoot.querySelector('lightning-button').click();
        await flush();
        expect(text(element.shadowRoot, '.rescore-error')).toBe(
            'The re-score request failed: Sextant scoring is switched off by your administrator'
        );
    });

    it('says so when the stored factors are unreadable', async () => {
        const element = mount();
        getRecord.emit(record({ ...SCORED, Sextant_Top_Factors__c: '{not json' }));
        await flush();
        expect(text(element.shadowRoot, '.factor-error')).toContain('unreadable');
        expect(element.shadowRoot.querySelector('.factors')).toBeNull();
    });
});

describe('helpers', () => {
    it('label and style any band the gateway names', () => {
        expect(bandLabel('medium')).toBe('Medium churn risk');
        expect(bandLabel('watch')).toBe('Watch churn risk');
        expect(bandLabel(null)).toBe('');
        expect(bandClass('HIGH')).toBe('band band-high');
        expect(bandClass('watch')).toBe('band band-other');
    });

    it('turn every error shape into a sentence', () => {
        expect(readableError({ body: { message: 'from Apex' } })).toBe('from Apex');
        expect(readableError({ body: [{ message: 'one' }, { message: 'two' }] })).toBe('one two');
        expect(readableError({ body: { pageErrors: [{ message: 'page' }] } })).toBe('page');
        expect(readableError({ message: 'plain' })).toBe('plain');
        expect(readableError({ status: 500 })).toBe('Unexpected error (500)');
        expect(readableError(null)).toBeNull();
    });

    it('map outcomes to text and scored to nothing', () => {
        expect(outcomeText('scored', null)).toBeNull();
        expect(outcomeText(null, null)).toBeNull();
        expect(outcomeText('job_failed', null)).toBe('The latest scoring failed (job_failed).');
    });

    it('read the direction of a factor in the words a gateway may use', () => {
        expect(direction('up')).toBe('up');
        expect(direction('Increases')).toBe('up');
        expect(direction('-')).toBe('down');
        expect(direction('decrease')).toBe('down');
        expect(direction(undefined)).toBe('none');
        expect(direction('sideways')).toBe('none');
    });

    it('parse stored factors', () => {
        expect(parseFactors(null)).toEqual({ factors: [] });
        expect(parseFactors('{"a":1}').error).toContain('not a list');
        const { factors } = parseFactors('[{"factor":"tenure_days"}]');
        expect(factors[0].text).toBe('tenure_days');
        expect(factors[0].arrow).toBe('•');
    });
});
