import { LightningElement, api, wire } from 'lwc';
import { getRecord, getFieldValue, notifyRecordUpdateAvailable } from 'lightning/uiRecordApi';
import CHURN_SCORE from '@salesforce/schema/Account.Churn_Score__c';
import BAND from '@salesforce/schema/Account.Sextant_Churn_Band__c';
import MODEL_VERSION from '@salesforce/schema/Account.Sextant_Model_Version__c';
import SCORED_AT from '@salesforce/schema/Account.Sextant_Scored_At__c';
import TOP_FACTORS from '@salesforce/schema/Account.Sextant_Top_Factors__c';
import CLV from '@salesforce/schema/Account.Sextant_CLV__c';
import P_ALIVE from '@salesforce/schema/Account.Sextant_P_Alive__c';
import NBA from '@salesforce/schema/Account.Sextant_Next_Best_Action__c';
import NBA_REASON from '@salesforce/schema/Account.Sextant_NBA_Reason__c';
import NBA_VALUE from '@salesforce/schema/Account.Sextant_NBA_Expected_Value__c';
import STATUS from '@salesforce/schema/Account.Sextant_Score_Status__c';
import STATUS_MESSAGE from '@salesforce/schema/Account.Sextant_Status_Message__c';
import STATUS_AT from '@salesforce/schema/Account.Sextant_Status_At__c';
import getContext from '@salesforce/apex/SextantScoreController.getContext';
import requestRescore from '@salesforce/apex/SextantScoreController.requestRescore';

const FIELDS = [
    CHURN_SCORE,
    BAND,
    MODEL_VERSION,
    SCORED_AT,
    TOP_FACTORS,
    CLV,
    P_ALIVE,
    NBA,
    NBA_REASON,
    NBA_VALUE,
    STATUS,
    STATUS_MESSAGE,
    STATUS_AT
];

const KNOWN_BANDS = ['high', 'medium', 'low'];
/** After a re-score request the card asks Lightning Data Service for the record again this often... */
export const POLL_INTERVAL_MS = 15000;
/** ...this many times (2 minutes), then says the score has not arrived yet. */
export const POLL_ATTEMPTS = 8;

/** CSS class of a band; bands the gateway names beyond high/medium/low share one neutral style. */
export function bandClass(band) {
    const known = KNOWN_BANDS.includes(String(band).toLowerCase());
    return `band ${known ? `band-${String(band).toLowerCase()}` : 'band-other'}`;
}

/** "high" → "High churn risk"; the gateway's own band names are shown as they come. */
export function bandLabel(band) {
    if (!band) {
        return '';
    }
    return `${band.charAt(0).toUpperCase()}${band.slice(1)} churn risk`;
}

/** What the latest attempt's outcome means for the user; null when the account was scored. */
export function outcomeText(status, message) {
    if (!status || status === 'scored') {
        return null;
    }
    if (status === 'not_found') {
        return "Sextant has no data for this account yet: it is scored after the connector's next sync.";
    }
    if (status === 'no_history') {
        return 'No order history yet: Sextant scores an account after its first order.';
    }
    return `The latest scoring failed (${status})${message ? `: ${message}` : '.'}`;
}

/** The message of a Lightning Data Service or Apex error, whatever its shape. */
export function readableError(error) {
    if (!error) {
        return null;
    }
    const body = error.body;
    if (Array.isArray(body)) {
        const messages = body.map((b) => b && b.message).filter(Boolean);
        if (messages.length) {
            return messages.join(' ');
        }
    } else if (body) {
        if (body.message) {
            return body.message;
        }
        if (body.pageErrors && body.pageErrors.length) {
            return body.pageErrors.map((e) => e.message).join(' ');
        }
    }
    if (error.message) {
        return error.message;
    }
    return `Unexpected error (${error.status || 'no status'})`;
}

const RAISES = ['up', 'increase', 'increases', 'positive', '+'];
const LOWERS = ['down', 'decrease', 'decreases', 'negative', '-'];

/** up (raises the churn risk), down (lowers it) or none, whatever word the gateway used. */
export function direction(value) {
    const v = String(value || '').toLowerCase();
    if (RAISES.includes(v)) {
        return 'up';
    }
    return LOWERS.includes(v) ? 'down' : 'none';
}

/** The top factors stored as JSON on the Account: {factors} or {error}. */
export function parseFactors(json) {
    if (!json) {
        return { factors: [] };
    }
    try {
        const list = JSON.parse(json);
        if (!Array.isArray(list)) {
            return { factors: [], error: 'The stored top factors are not a list.' };
        }
        return {
            factors: list.map((f, i) => {
                const d = direction(f.direction);
                return {
                    key: `${i}-${f.factor}`,
                    text: f.text || f.factor,
                    arrow: { up: '▲', down: '▼', none: '•' }[d],
                    directionClass: `factor factor-${d}`
                };
            })
        };
    } catch (e) {
        return { factors: [], error: `The stored top factors are unreadable: ${e.message}` };
    }
}

export default class SextantScore extends LightningElement {
    @api recordId;
    record;
    recordError;
    context;
    contextError;
    rescoreMessage;
    rescoreFailed = false;
    requesting = false;
    pollTimer;
    polling = false;
    pollsLeft = 0;
    statusAtWhenRequested;

    @wire(getRecord, { recordId: '$recordId', fields: FIELDS })
    wiredRecord({ data, error }) {
        this.record = data;
        this.recordError = error;
        if (this.polling && data && this.field(STATUS_AT) !== this.statusAtWhenRequested) {
            this.stopPolling();
            this.rescoreMessage = 'Updated with the new result.';
        }
    }

    disconnectedCallback() {
        this.stopPolling();
    }

    stopPolling() {
        clearTimeout(this.pollTimer);
        this.pollTimer = undefined;
        this.polling = false;
    }

    /**
     * Every POLL_INTERVAL_MS, POLL_ATTEMPTS times, asks Lightning Data Service for the record again; the
     * wire handler stops when the outcome time changes. One interval after the last ask it gives up.
     */
    poll() {
        // eslint-disable-next-line @lwc/lwc/no-async-operation -- the score arrives from a background job, not from this page
        this.pollTimer = setTimeout(() => {
            if (!this.polling) {
                return;
            }
            if (this.pollsLeft === 0) {
                this.stopPolling();
                this.rescoreMessage =
                    "The new score has not arrived yet (it may wait for the connector's next sync); reload the page later.";
                return;
            }
            this.pollsLeft -= 1;
            notifyRecordUpdateAvailable([{ recordId: this.recordId }]);
            this.poll();
        }, POLL_INTERVAL_MS);
    }

    @wire(getContext)
    wiredContext({ data, error }) {
        this.context = data;
        this.contextError = error;
    }

    field(f) {
        return this.record ? getFieldValue(this.record, f) : null;
    }

    get loading() {
        return !this.record && !this.recordError;
    }

    get errorMessage() {
        return this.recordError ? `Could not load the churn score: ${readableError(this.recordError)}` : null;
    }

    get score() {
        return this.field(CHURN_SCORE);
    }

    get hasScore() {
        return this.score !== null && this.score !== undefined;
    }

    get percent() {
        return this.hasScore ? `${Math.round(this.score * 100)}%` : '';
    }

    get band() {
        return this.field(BAND);
    }

    get bandLabel() {
        return bandLabel(this.band);
    }

    get bandClass() {
        return bandClass(this.band);
    }

    get modelVersion() {
        return this.field(MODEL_VERSION);
    }

    get scoredAt() {
        return this.field(SCORED_AT);
    }

    get factorResult() {
        return parseFactors(this.field(TOP_FACTORS));
    }

    get factors() {
        return this.factorResult.factors;
    }

    get hasFactors() {
        return this.factors.length > 0;
    }

    get factorError() {
        return this.factorResult.error;
    }

    get clv() {
        return this.field(CLV);
    }

    get hasClv() {
        return this.clv !== null && this.clv !== undefined;
    }

    get pAlive() {
        const p = this.field(P_ALIVE);
        return p === null || p === undefined ? null : `${Math.round(p * 100)}%`;
    }

    get nextBestAction() {
        return this.field(NBA);
    }

    get nbaReason() {
        return this.field(NBA_REASON);
    }

    get nbaValue() {
        return this.field(NBA_VALUE);
    }

    get hasNbaValue() {
        return this.nbaValue !== null && this.nbaValue !== undefined;
    }

    get outcome() {
        return outcomeText(this.field(STATUS), this.field(STATUS_MESSAGE));
    }

    get outcomeAt() {
        return this.field(STATUS_AT);
    }

    get unscored() {
        return !this.hasScore && !this.outcome;
    }

    get switchedOff() {
        return Boolean(this.context) && this.context.enabled === false;
    }

    get canRescore() {
        return Boolean(this.context && this.context.canRescore);
    }

    get contextErrorMessage() {
        return this.contextError ? readableError(this.contextError) : null;
    }

    get rescoreClass() {
        return this.rescoreFailed ? 'rescore-message rescore-error' : 'rescore-message';
    }

    async handleRescore() {
        this.requesting = true;
        this.rescoreFailed = false;
        this.rescoreMessage = 'Requesting a new score…';
        try {
            this.statusAtWhenRequested = this.field(STATUS_AT);
            await requestRescore({ accountId: this.recordId });
            this.rescoreMessage = 'A new score was requested; this card updates when it arrives.';
            this.stopPolling();
            this.polling = true;
            this.pollsLeft = POLL_ATTEMPTS;
            this.poll();
        } catch (e) {
            this.rescoreFailed = true;
            this.rescoreMessage = `The re-score request failed: ${readableError(e)}`;
        } finally {
            this.requesting = false;
        }
    }
}
