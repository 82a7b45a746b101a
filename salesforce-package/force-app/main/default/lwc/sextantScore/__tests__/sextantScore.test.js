import { createElement } from 'lwc';
import { getRecord, notifyRecordUpdateAvailable, createRecord } from 'lightning/uiRecordApi';
import { refreshApex } from '@salesforce/apex';
import getContext from '@salesforce/apex/SextantScoreController.getContext';
import getScoreHistory from '@salesforce/apex/SextantScoreController.getScoreHistory';
import requestRescore from '@salesforce/apex/SextantScoreController.requestRescore';
import SextantScore, {
    HISTORY_POINTS,
    LABELS,
    POLL_ATTEMPTS,
    POLL_INTERVAL_MS,
    SPARK_HEIGHT,
    bandClass,
    bandLabel,
    clvSummary,
    direction,
    format,
    outcomeText,
    parseFactors,
    readableError,
    trendOf
} from 'c/sextantScore';

jest.mock(
    '@salesforce/apex/SextantScoreController.getContext',
    () => {
        const { createApexTestWireAdapter } = require('@salesforce/sfdx-lwc-jest');
        return { default: createApexTestWireAdapter(jest.fn()) };
    },
    { virtual: true }
);
jest.mock(
    '@salesforce/apex/SextantScoreController.getScoreHistory',
    () => {
        const { createApexTestWireAdapter } = require('@salesforce/sfdx-lwc-jest');
        return { default: createApexTestWireAdapter(jest.fn()) };
    },
    { virtual: true }
);
jest.mock('@salesforce/apex', () => ({ refreshApex: jest.fn(() => Promise.resolve()) }), { virtual: true });
// Records where the card navigates (the stub's Navigate does nothing).
const mockNavigate = jest.fn();
jest.mock('lightning/navigation', () => {
    const Navigate = Symbol('Navigate');
    const NavigationMixin = (Base) =>
        class extends Base {
            [Navigate](pageReference) {
                mockNavigate(pageReference);
            }
        };
    NavigationMixin.Navigate = Navigate;
    return { NavigationMixin };
});
jest.mock('@salesforce/apex/SextantScoreController.requestRescore', () => ({ default: jest.fn() }), { virtual: true });

const RECORD_ID = '0015g0000000001AAA';

const FACTORS = JSON.stringify([
    { factor: 'recency_days', direction: 'raises_risk', text: 'No order for 120 days' },
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
// Text as a user (or a screen reader) reads it: runs of white space are one space.
const squash = (value) => value.replace(/\s+/g, ' ').trim();
const text = (root, selector) => {
    const node = root.querySelector(selector);
    return node ? squash(node.textContent) : null;
};
const HISTORY = [
    { score: 0.4, scoredAt: '2026-11-01T10:00:00.000Z', band: 'medium', modelVersion: 'churn-v4' },
    { score: 0.61, scoredAt: '2026-11-10T10:00:00.000Z', band: 'high', modelVersion: 'churn-v4' },
    { score: 0.8234, scoredAt: '2026-11-23T10:00:00.000Z', band: 'high', modelVersion: 'churn-v4' }
];

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
        expect(squash(factors[0].textContent)).toBe('▲ Raises the risk: No order for 120 days');
        expect(factors[0].classList).toContain('factor-up');
        expect(squash(factors[1].textContent)).toBe('▼ Lowers the risk: 2 orders this year');
        expect(root.querySelector('.clv lightning-formatted-number').value).toBe(1234.5);
        expect(text(root, '.p-alive')).toBe('Still active: 42%');
        expect(text(root, '.nba-action')).toBe('Call the account owner');
        expect(text(root, '.nba-reason')).toBe('High churn risk on a valuable account');
        expect(root.querySelector('.nba-value lightning-formatted-number').value).toBe(310.25);
        expect(text(root, '.model')).toBe('Model churn-v4');
        expect(root.querySelector('.outcome')).toBeNull();
        expect(root.querySelector('.unscored')).toBeNull();
    });

    it("shows the CLV on one line with horizon, tier and P(alive), and the action's expected value", async () => {
        const element = mount();
        getRecord.emit(
            record({
                ...SCORED,
                Sextant_CLV_Horizon_Months__c: 12,
                Sextant_CLV_Tier__c: 'high',
                Sextant_CLV_Unavailable_Reason__c: null
            })
        );
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.clv-summary')).toBe('Customer value (12 months): $1,234.50, high value tier, P(alive) 42%');
        // The older lines give way to the summary.
        expect(root.querySelector('.clv')).toBeNull();
        expect(root.querySelector('.p-alive')).toBeNull();
        expect(root.querySelector('.clv-unavailable')).toBeNull();
        expect(text(root, '.nba-value')).toBe('Expected value');
        expect(root.querySelector('.nba-value lightning-formatted-number').value).toBe(310.25);
    });

    it('says why the value is unavailable, and shows the action without an expected value', async () => {
        const element = mount();
        getRecord.emit(
            record({
                ...SCORED,
                Sextant_CLV__c: null,
                Sextant_P_Alive__c: null,
                Sextant_CLV_Horizon_Months__c: null,
                Sextant_CLV_Tier__c: null,
                Sextant_CLV_Unavailable_Reason__c: 'no CLV model is loaded',
                Sextant_NBA_Expected_Value__c: null
            })
        );
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.clv-unavailable')).toBe('Value unavailable: no CLV model is loaded');
        expect(root.querySelector('.clv-summary')).toBeNull();
        expect(root.querySelector('.clv')).toBeNull();
        expect(text(root, '.nba-action')).toBe('Call the account owner');
        expect(root.querySelector('.nba-value')).toBeNull();
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
        expect(root.querySelector('.clv-summary')).toBeNull();
        expect(root.querySelector('.clv-unavailable')).toBeNull();
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

    it('shows the onboarding action of an account without history and without a score', async () => {
        const element = mount();
        getRecord.emit(
            record({
                Churn_Score__c: null,
                Sextant_Score_Status__c: 'no_history',
                Sextant_Status_At__c: '2026-11-23T10:00:00.000Z',
                Sextant_Next_Best_Action__c: 'Welcome call',
                Sextant_NBA_Reason__c: 'no orders yet',
                Sextant_NBA_Expected_Value__c: null
            })
        );
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('.score')).toBeNull();
        expect(root.querySelector('.outcome-text')).not.toBeNull();
        expect(text(root, '.nba-action')).toBe('Welcome call');
        expect(text(root, '.nba-reason')).toBe('no orders yet');
        expect(root.querySelector('.nba-value')).toBeNull();
        expect(root.querySelector('.nba-act')).not.toBeNull();
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
        expect(element.shadowRoot.querySelector('lightning-button.rescore')).toBeNull();
        getContext.emit({ enabled: true, canRescore: true });
        await flush();
        expect(element.shadowRoot.querySelector('lightning-button.rescore')).not.toBeNull();
    });

    it('says when Sextant is switched off', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getContext.emit({ enabled: false, canRescore: false });
        await flush();
        expect(text(element.shadowRoot, '.switched-off')).toContain('switched off');
        expect(element.shadowRoot.querySelector('lightning-button.rescore')).toBeNull();
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
        element.shadowRoot.querySelector('lightning-button.rescore').click();
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
            element.shadowRoot.querySelector('lightning-button.rescore').click();
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
            element.shadowRoot.querySelector('lightning-button.rescore').click();
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
            element.shadowRoot.querySelector('lightning-button.rescore').click();
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
        element.shadowRoot.querySelector('lightning-button.rescore').click();
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
    it('shows the trend against the previous score with a sparkline', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getScoreHistory.emit(HISTORY);
        await flush();
        const root = element.shadowRoot;
        expect(getScoreHistory.getLastConfig()).toEqual({ accountId: RECORD_ID, maxRows: HISTORY_POINTS });
        expect(text(root, '.trend-text')).toBe('Up 21 points since the previous score');
        expect(root.querySelector('.trend-text').classList).toContain('trend-up');
        const svg = root.querySelector('svg.sparkline');
        expect(svg.getAttribute('role')).toBe('img');
        expect(svg.getAttribute('aria-label')).toBe('Churn score over the last 3 scorings, from 40% to 82%');
        const points = root.querySelector('polyline').getAttribute('points').split(' ');
        expect(points).toHaveLength(3);
        // Higher risk is drawn higher: the last point's y is the smallest.
        const ys = points.map((p) => Number(p.split(',')[1]));
        expect(ys[2]).toBeLessThan(ys[1]);
        expect(ys[1]).toBeLessThan(ys[0]);
    });

    it('says when the score went down, stayed or is the first one', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getScoreHistory.emit([HISTORY[1], { ...HISTORY[2], score: 0.55 }]);
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.trend-text')).toBe('Down 6 points since the previous score');
        getScoreHistory.emit([HISTORY[2], { ...HISTORY[2] }]);
        await flush();
        expect(text(root, '.trend-text')).toBe('Unchanged since the previous score');
        getScoreHistory.emit([HISTORY[2]]);
        await flush();
        expect(text(root, '.trend-text')).toBe('First score: nothing to compare with yet.');
        expect(root.querySelector('svg.sparkline')).toBeNull();
    });

    it('loses only the trend line when the history cannot be read', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getScoreHistory.error({ message: 'You cannot read the Sextant score history' });
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.history-error')).toBe(
            'Could not load the score history: You cannot read the Sextant score history'
        );
        expect(root.querySelector('.trend')).toBeNull();
        expect(text(root, '.score')).toBe('82%');
    });

    it('reloads the history when a new scoring arrives', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getScoreHistory.emit(HISTORY);
        await flush();
        expect(refreshApex).not.toHaveBeenCalled();
        getRecord.emit(record({ ...SCORED, Sextant_Status_At__c: '2026-11-24T09:00:00.000Z' }));
        await flush();
        expect(refreshApex).toHaveBeenCalledTimes(1);
        expect(element.shadowRoot.querySelector('.score')).not.toBeNull();
    });

    it('creates a task for the next best action in one click', async () => {
        createRecord.mockResolvedValue({ id: '00T5g0000000001AAA' });
        const element = mount();
        getRecord.emit(record(SCORED));
        await flush();
        const button = element.shadowRoot.querySelector('lightning-button.nba-act');
        expect(button.label).toBe('Create task');
        button.click();
        await flush();
        expect(createRecord).toHaveBeenCalledTimes(1);
        const input = createRecord.mock.calls[0][0];
        expect(input.apiName).toBe('Task');
        expect(input.fields.Subject).toBe('Call the account owner');
        expect(input.fields.WhatId).toBe(RECORD_ID);
        expect(input.fields.ActivityDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
        expect(input.fields.Description).toBe(
            'Suggested by Sextant (model churn-v4). High churn risk on a valuable account'
        );
        expect(text(element.shadowRoot, '.task-message')).toBe('Task created: Call the account owner');
        // One task per action: the button stays disabled until the action changes.
        expect(element.shadowRoot.querySelector('lightning-button.nba-act').disabled).toBe(true);
        element.shadowRoot.querySelector('lightning-button.nba-act').click();
        await flush();
        expect(createRecord).toHaveBeenCalledTimes(1);
        getRecord.emit(record({ ...SCORED, Sextant_Next_Best_Action__c: 'Send the retention offer' }));
        await flush();
        expect(element.shadowRoot.querySelector('lightning-button.nba-act').disabled).toBe(false);
    });

    it('starts the flow the admin named instead of creating a task', async () => {
        const element = mount();
        element.actionFlowApiName = 'Retention_Offer';
        getRecord.emit(record(SCORED));
        await flush();
        const button = element.shadowRoot.querySelector('lightning-button.nba-act');
        expect(button.label).toBe('Act on it');
        button.click();
        await flush();
        expect(createRecord).not.toHaveBeenCalled();
        expect(mockNavigate).toHaveBeenCalledTimes(1);
        const { type, attributes } = mockNavigate.mock.calls[0][0];
        expect(type).toBe('standard__webPage');
        const url = new URL(attributes.url, 'https://example.my.salesforce.com');
        expect(url.pathname).toBe('/flow/Retention_Offer');
        expect(url.searchParams.get('recordId')).toBe(RECORD_ID);
        expect(url.searchParams.get('nextBestAction')).toBe('Call the account owner');
        expect(url.searchParams.get('retURL')).toBe(`/${RECORD_ID}`);
    });

    it('refuses a flow name that is no API name, saying so', async () => {
        const element = mount();
        element.actionFlowApiName = '../setup?x=1';
        getRecord.emit(record(SCORED));
        await flush();
        element.shadowRoot.querySelector('lightning-button.nba-act').click();
        await flush();
        expect(mockNavigate).not.toHaveBeenCalled();
        expect(text(element.shadowRoot, '.task-error')).toBe(
            'The flow ../setup?x=1 set for this card is not a valid flow API name; ask your administrator.'
        );
    });

    it('says why a task could not be created', async () => {
        createRecord.mockRejectedValue({ body: { message: 'You do not have access to create Tasks' } });
        const element = mount();
        getRecord.emit(record(SCORED));
        await flush();
        element.shadowRoot.querySelector('lightning-button.nba-act').click();
        await flush();
        expect(text(element.shadowRoot, '.task-error')).toBe(
            'The task could not be created: You do not have access to create Tasks'
        );
        expect(element.shadowRoot.querySelector('lightning-button.nba-act').disabled).toBe(false);
    });

    it('asks for every field as optional, so a hidden field costs one line', async () => {
        const element = mount();
        await flush();
        const config = getRecord.getLastConfig();
        expect(config.fields).toBeUndefined();
        expect(config.optionalFields).toHaveLength(16);
        // The user cannot read CLV and the factors: those lines are missing, the rest is there.
        const visible = { ...SCORED };
        delete visible.Sextant_CLV__c;
        delete visible.Sextant_Top_Factors__c;
        getRecord.emit(record(visible));
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.score')).toBe('82%');
        expect(root.querySelector('.clv')).toBeNull();
        expect(root.querySelector('.factors')).toBeNull();
        expect(text(root, '.nba-action')).toBe('Call the account owner');
    });

    it('shows every text from a Custom Label, none as a raw label name', async () => {
        const element = mount();
        getRecord.emit(record(SCORED));
        getScoreHistory.emit(HISTORY);
        getContext.emit({ enabled: true, canRescore: true });
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('lightning-card').title).toBe('Churn risk');
        expect(root.textContent).not.toMatch(/\bc\.Sextant_/);
        Object.values(LABELS).forEach((value) => expect(value).not.toMatch(/^c\./));
    });

    describe('is accessible (axe rules via @sa11y/jest)', () => {
        it('while loading', async () => {
            const element = mount();
            await flush();
            await expect(element).toBeAccessible();
        });

        it('with a full scorecard, trend, action and re-score button', async () => {
            const element = mount();
            getRecord.emit(record(SCORED));
            getScoreHistory.emit(HISTORY);
            getContext.emit({ enabled: true, canRescore: true });
            await flush();
            await expect(element).toBeAccessible();
        });

        it('with the CLV line and with the value unavailable', async () => {
            const element = mount();
            getRecord.emit(record({ ...SCORED, Sextant_CLV_Horizon_Months__c: 12, Sextant_CLV_Tier__c: 'medium' }));
            await flush();
            await expect(element).toBeAccessible();
            getRecord.emit(record({ ...SCORED, Sextant_CLV__c: null, Sextant_CLV_Unavailable_Reason__c: 'no model' }));
            await flush();
            await expect(element).toBeAccessible();
        });

        it('with an outcome and errors', async () => {
            const element = mount();
            getRecord.emit(record({ Churn_Score__c: null, Sextant_Score_Status__c: 'no_history' }));
            getScoreHistory.error({ message: 'no access' });
            getContext.error({ message: 'Sextant is misconfigured: Nightly_Cron__c is empty' });
            await flush();
            await expect(element).toBeAccessible();
        });

        it('after a load error', async () => {
            const element = mount();
            getRecord.error({ message: 'not accessible' });
            await flush();
            await expect(element).toBeAccessible();
        });
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
        expect(direction('raises_risk')).toBe('up');
        expect(direction('lowers_risk')).toBe('down');
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

    it('build the CLV line from the parts there are', () => {
        expect(clvSummary(1234.5, 12, 'low', 0.9)).toBe(
            'Customer value (12 months): $1,234.50, low value tier, P(alive) 90%'
        );
        expect(clvSummary(0, 6, null, null)).toBe('Customer value (6 months): $0.00');
        expect(clvSummary(10, 12, 'platinum', 0.5)).toBe('Customer value (12 months): $10.00, platinum, P(alive) 50%');
        expect(clvSummary(null, 12, 'high', 0.5)).toBeNull();
        expect(clvSummary(10, null, 'high', 0.5)).toBeNull();
    });

    it('fill label placeholders', () => {
        expect(format('{0} of {1}', 1, 2)).toBe('1 of 2');
        expect(format('{1}, {0}', 'a', 'b')).toBe('b, a');
        expect(format('missing {0}')).toBe('missing ');
    });

    it('compute the trend on a fixed 0..1 scale', () => {
        expect(trendOf([])).toBeNull();
        expect(trendOf(null)).toBeNull();
        const t = trendOf([{ score: 0 }, { score: 1 }]);
        expect(t.direction).toBe('up');
        expect(t.text).toBe('Up 100 points since the previous score');
        expect(t.sparkPoints).toBe(`0.0,${SPARK_HEIGHT.toFixed(1)} 120.0,0.0`);
        // Rounding to whole points first: 0.404 and 0.396 are both 40 %.
        expect(trendOf([{ score: 0.404 }, { score: 0.396 }]).direction).toBe('none');
        // Missing scores are skipped, not drawn as zero.
        expect(trendOf([{ score: 0.5 }, { score: null }, { score: 0.2 }]).text).toBe(
            'Down 30 points since the previous score'
        );
    });
});
