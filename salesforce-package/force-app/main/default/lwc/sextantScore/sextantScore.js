import { LightningElement, api, wire } from 'lwc';
import { getRecord, getFieldValue, notifyRecordUpdateAvailable, createRecord } from 'lightning/uiRecordApi';
import { refreshApex } from '@salesforce/apex';
import { NavigationMixin } from 'lightning/navigation';
import CHURN_SCORE from '@salesforce/schema/Account.Churn_Score__c';
import BAND from '@salesforce/schema/Account.Sextant_Churn_Band__c';
import MODEL_VERSION from '@salesforce/schema/Account.Sextant_Model_Version__c';
import SCORED_AT from '@salesforce/schema/Account.Sextant_Scored_At__c';
import TOP_FACTORS from '@salesforce/schema/Account.Sextant_Top_Factors__c';
import CLV from '@salesforce/schema/Account.Sextant_CLV__c';
import P_ALIVE from '@salesforce/schema/Account.Sextant_P_Alive__c';
import CLV_TIER from '@salesforce/schema/Account.Sextant_CLV_Tier__c';
import CLV_HORIZON from '@salesforce/schema/Account.Sextant_CLV_Horizon_Months__c';
import CLV_UNAVAILABLE from '@salesforce/schema/Account.Sextant_CLV_Unavailable_Reason__c';
import NBA from '@salesforce/schema/Account.Sextant_Next_Best_Action__c';
import NBA_REASON from '@salesforce/schema/Account.Sextant_NBA_Reason__c';
import NBA_VALUE from '@salesforce/schema/Account.Sextant_NBA_Expected_Value__c';
import STATUS from '@salesforce/schema/Account.Sextant_Score_Status__c';
import STATUS_MESSAGE from '@salesforce/schema/Account.Sextant_Status_Message__c';
import STATUS_AT from '@salesforce/schema/Account.Sextant_Status_At__c';
import getContext from '@salesforce/apex/SextantScoreController.getContext';
import getScoreHistory from '@salesforce/apex/SextantScoreController.getScoreHistory';
import requestRescore from '@salesforce/apex/SextantScoreController.requestRescore';
import CARD_TITLE from '@salesforce/label/c.Sextant_Card_Title';
import LOADING from '@salesforce/label/c.Sextant_Loading';
import LOAD_ERROR from '@salesforce/label/c.Sextant_Load_Error';
import BAND_LABEL from '@salesforce/label/c.Sextant_Band';
import NOT_SCORED from '@salesforce/label/c.Sextant_Not_Scored';
import OUTCOME_NOT_FOUND from '@salesforce/label/c.Sextant_Outcome_Not_Found';
import OUTCOME_NO_HISTORY from '@salesforce/label/c.Sextant_Outcome_No_History';
import OUTCOME_FAILED from '@salesforce/label/c.Sextant_Outcome_Failed';
import OUTCOME_FAILED_MESSAGE from '@salesforce/label/c.Sextant_Outcome_Failed_Message';
import LAST_ATTEMPT from '@salesforce/label/c.Sextant_Last_Attempt';
import WHY from '@salesforce/label/c.Sextant_Why';
import FACTOR_RAISES from '@salesforce/label/c.Sextant_Factor_Raises';
import FACTOR_LOWERS from '@salesforce/label/c.Sextant_Factor_Lowers';
import FACTORS_NOT_LIST from '@salesforce/label/c.Sextant_Factors_Not_List';
import FACTORS_UNREADABLE from '@salesforce/label/c.Sextant_Factors_Unreadable';
import CLV_LABEL from '@salesforce/label/c.Sextant_CLV';
import STILL_ACTIVE from '@salesforce/label/c.Sextant_Still_Active';
import CLV_SUMMARY from '@salesforce/label/c.Sextant_CLV_Summary';
import CLV_P_ALIVE from '@salesforce/label/c.Sextant_CLV_P_Alive';
import CLV_TIER_HIGH from '@salesforce/label/c.Sextant_CLV_Tier_High';
import CLV_TIER_MEDIUM from '@salesforce/label/c.Sextant_CLV_Tier_Medium';
import CLV_TIER_LOW from '@salesforce/label/c.Sextant_CLV_Tier_Low';
import CLV_UNAVAILABLE_LABEL from '@salesforce/label/c.Sextant_CLV_Unavailable';
import LOCALE from '@salesforce/i18n/locale';
import CURRENCY from '@salesforce/i18n/currency';
import NBA_TITLE from '@salesforce/label/c.Sextant_NBA_Title';
import NBA_EXPECTED_VALUE from '@salesforce/label/c.Sextant_NBA_Expected_Value';
import NBA_CREATE_TASK from '@salesforce/label/c.Sextant_NBA_Create_Task';
import NBA_START_FLOW from '@salesforce/label/c.Sextant_NBA_Start_Flow';
import NBA_FLOW_INVALID from '@salesforce/label/c.Sextant_NBA_Flow_Invalid';
import NBA_CREATING_TASK from '@salesforce/label/c.Sextant_NBA_Creating_Task';
import NBA_TASK_CREATED from '@salesforce/label/c.Sextant_NBA_Task_Created';
import NBA_TASK_FAILED from '@salesforce/label/c.Sextant_NBA_Task_Failed';
import NBA_TASK_DESCRIPTION from '@salesforce/label/c.Sextant_NBA_Task_Description';
import MODEL from '@salesforce/label/c.Sextant_Model';
import SCORED from '@salesforce/label/c.Sextant_Scored';
import TREND_TITLE from '@salesforce/label/c.Sextant_Trend_Title';
import TREND_UP from '@salesforce/label/c.Sextant_Trend_Up';
import TREND_DOWN from '@salesforce/label/c.Sextant_Trend_Down';
import TREND_SAME from '@salesforce/label/c.Sextant_Trend_Same';
import TREND_FIRST from '@salesforce/label/c.Sextant_Trend_First';
import TREND_CHART from '@salesforce/label/c.Sextant_Trend_Chart';
import HISTORY_ERROR from '@salesforce/label/c.Sextant_History_Error';
import SWITCHED_OFF from '@salesforce/label/c.Sextant_Switched_Off';
import RESCORE from '@salesforce/label/c.Sextant_Rescore';
import RESCORE_REQUESTING from '@salesforce/label/c.Sextant_Rescore_Requesting';
import RESCORE_REQUESTED from '@salesforce/label/c.Sextant_Rescore_Requested';
import RESCORE_UPDATED from '@salesforce/label/c.Sextant_Rescore_Updated';
import RESCORE_NOT_ARRIVED from '@salesforce/label/c.Sextant_Rescore_Not_Arrived';
import RESCORE_FAILED from '@salesforce/label/c.Sextant_Rescore_Failed';
import UNEXPECTED_ERROR from '@salesforce/label/c.Sextant_Unexpected_Error';
import NO_STATUS from '@salesforce/label/c.Sextant_No_Status';

/**
 * Every field is optional: a user without field-level access to one of them loses that line of the
 * card, not the card (getRecord with `fields` would fail the whole record).
 */
const FIELDS = [
    CHURN_SCORE,
    BAND,
    MODEL_VERSION,
    SCORED_AT,
    TOP_FACTORS,
    CLV,
    P_ALIVE,
    CLV_TIER,
    CLV_HORIZON,
    CLV_UNAVAILABLE,
    NBA,
    NBA_REASON,
    NBA_VALUE,
    STATUS,
    STATUS_MESSAGE,
    STATUS_AT
];

/** Every text the card shows comes from a Custom Label, so admins can translate or reword it. */
export const LABELS = {
    cardTitle: CARD_TITLE,
    loading: LOADING,
    notScored: NOT_SCORED,
    lastAttempt: LAST_ATTEMPT,
    why: WHY,
    factorRaises: FACTOR_RAISES,
    factorLowers: FACTOR_LOWERS,
    clv: CLV_LABEL,
    nbaTitle: NBA_TITLE,
    nbaExpectedValue: NBA_EXPECTED_VALUE,
    scored: SCORED,
    trendTitle: TREND_TITLE,
    switchedOff: SWITCHED_OFF,
    rescore: RESCORE
};

const KNOWN_BANDS = ['high', 'medium', 'low'];
/** After a re-score request the card asks Lightning Data Service for the record again this often... */
export const POLL_INTERVAL_MS = 15000;
/** ...this many times (2 minutes), then says the score has not arrived yet. */
export const POLL_ATTEMPTS = 8;
/** Scorings drawn in the trend line. */
export const HISTORY_POINTS = 12;
/** Size of the trend line's drawing, in SVG units. */
export const SPARK_WIDTH = 120;
export const SPARK_HEIGHT = 32;
/** A flow API name: letters, digits and underscores, starting with a letter. */
const FLOW_API_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** The longest Task subject Salesforce stores. */
const TASK_SUBJECT_LENGTH = 255;

/** Fills {0}, {1}, ... in a label; a missing argument leaves an empty string. */
export function format(label, ...args) {
    return String(label).replace(/\{(\d+)\}/g, (match, i) => {
        const value = args[Number(i)];
        return value === null || value === undefined ? '' : String(value);
    });
}

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
    return format(BAND_LABEL, `${band.charAt(0).toUpperCase()}${band.slice(1)}`);
}

const CLV_TIERS = { high: CLV_TIER_HIGH, medium: CLV_TIER_MEDIUM, low: CLV_TIER_LOW };

/** An amount in the user's currency (the orders' currency is the org's), for the CLV line. */
export function money(value) {
    try {
        return new Intl.NumberFormat(LOCALE, { style: 'currency', currency: CURRENCY }).format(Number(value));
    } catch {
        // An unknown locale or currency code: the plain number, never a broken card.
        return new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 }).format(Number(value));
    }
}

/**
 * "Customer value (12 months): $X, high value tier, P(alive) Y%" when the gateway gave the horizon
 * (a gateway before CLV status did not: the card then shows the older lines); parts the record lacks
 * (tier, P(alive)) are left out. A tier word the package does not know is shown as given.
 */
export function clvSummary(value, horizonMonths, tier, pAlive) {
    if (value === null || value === undefined || horizonMonths === null || horizonMonths === undefined) {
        return null;
    }
    const parts = [format(CLV_SUMMARY, horizonMonths, money(value))];
    if (tier) {
        parts.push(CLV_TIERS[String(tier).toLowerCase()] || tier);
    }
    if (pAlive !== null && pAlive !== undefined) {
        parts.push(format(CLV_P_ALIVE, `${points(pAlive)}%`));
    }
    return parts.join(', ');
}

/** What the latest attempt's outcome means for the user; null when the account was scored. */
export function outcomeText(status, message) {
    if (!status || status === 'scored') {
        return null;
    }
    if (status === 'not_found') {
        return OUTCOME_NOT_FOUND;
    }
    if (status === 'no_history') {
        return OUTCOME_NO_HISTORY;
    }
    return message ? format(OUTCOME_FAILED_MESSAGE, status, message) : format(OUTCOME_FAILED, status);
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
    return format(UNEXPECTED_ERROR, error.status || NO_STATUS);
}

// The gateway says raises_risk / lowers_risk; other words a gateway may use are read too.
const RAISES = ['raises_risk', 'raises', 'up', 'increase', 'increases', 'positive', '+'];
const LOWERS = ['lowers_risk', 'lowers', 'down', 'decrease', 'decreases', 'negative', '-'];

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
            return { factors: [], error: FACTORS_NOT_LIST };
        }
        return {
            factors: list.map((f, i) => {
                const d = direction(f.direction);
                return {
                    key: `${i}-${f.factor}`,
                    text: f.text || f.factor,
                    arrow: { up: '▲', down: '▼', none: '•' }[d],
                    // The arrow is decorative; screen readers hear this instead.
                    assistive: { up: FACTOR_RAISES, down: FACTOR_LOWERS, none: '' }[d],
                    directionClass: `factor factor-${d}`
                };
            })
        };
    } catch (e) {
        return { factors: [], error: format(FACTORS_UNREADABLE, e.message) };
    }
}

/** Percentage points between two scores in 0..1, rounded. */
function points(score) {
    return Math.round(Number(score) * 100);
}

/**
 * The trend of the score history (oldest first): the text comparing the last two scorings, the
 * direction, and the sparkline's polyline points on a fixed 0..1 scale (so heights compare across
 * accounts). Null without history.
 */
export function trendOf(history) {
    const scores = (history || [])
        .map((h) => h && h.score)
        .filter((s) => s !== null && s !== undefined && !Number.isNaN(Number(s)));
    if (!scores.length) {
        return null;
    }
    const last = scores[scores.length - 1];
    let text = TREND_FIRST;
    let dir = 'none';
    if (scores.length > 1) {
        const delta = points(last) - points(scores[scores.length - 2]);
        if (delta > 0) {
            text = format(TREND_UP, delta);
            dir = 'up';
        } else if (delta < 0) {
            text = format(TREND_DOWN, -delta);
            dir = 'down';
        } else {
            text = TREND_SAME;
        }
    }
    const step = scores.length > 1 ? SPARK_WIDTH / (scores.length - 1) : 0;
    const clamp = (s) => Math.min(1, Math.max(0, Number(s)));
    const sparkPoints = scores
        .map((s, i) => `${(i * step).toFixed(1)},${(SPARK_HEIGHT - clamp(s) * SPARK_HEIGHT).toFixed(1)}`)
        .join(' ');
    return {
        text,
        direction: dir,
        sparkPoints: scores.length > 1 ? sparkPoints : null,
        chartLabel: format(TREND_CHART, scores.length, `${points(scores[0])}%`, `${points(last)}%`)
    };
}

/** Today as YYYY-MM-DD in the browser's time zone (a Task's ActivityDate is a date). */
function today() {
    const d = new Date();
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

export default class SextantScore extends NavigationMixin(LightningElement) {
    @api recordId;
    /** Set in Lightning App Builder: the screen flow that acts on the next best action instead of a Task. */
    @api actionFlowApiName;
    labels = LABELS;
    record;
    recordError;
    context;
    contextError;
    history;
    historyError;
    historyWire;
    rescoreMessage;
    rescoreFailed = false;
    requesting = false;
    pollTimer;
    polling = false;
    pollsLeft = 0;
    statusAtWhenRequested;
    taskMessage;
    taskFailed = false;
    creatingTask = false;
    taskCreatedFor;

    @wire(getRecord, { recordId: '$recordId', optionalFields: FIELDS })
    wiredRecord({ data, error }) {
        const previousStatusAt = this.field(STATUS_AT);
        this.record = data;
        this.recordError = error;
        if (!data) {
            return;
        }
        const statusAt = this.field(STATUS_AT);
        if (this.polling && statusAt !== this.statusAtWhenRequested) {
            this.stopPolling();
            this.rescoreMessage = RESCORE_UPDATED;
        }
        if (previousStatusAt !== undefined && previousStatusAt !== null && statusAt !== previousStatusAt) {
            // A new scoring arrived: its history row is there too.
            this.refreshHistory();
        }
    }

    @wire(getScoreHistory, { accountId: '$recordId', maxRows: HISTORY_POINTS })
    wiredHistory(result) {
        this.historyWire = result;
        this.history = result.data;
        this.historyError = result.error;
    }

    @wire(getContext)
    wiredContext({ data, error }) {
        this.context = data;
        this.contextError = error;
    }

    refreshHistory() {
        if (this.historyWire) {
            refreshApex(this.historyWire);
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
                this.rescoreMessage = RESCORE_NOT_ARRIVED;
                return;
            }
            this.pollsLeft -= 1;
            notifyRecordUpdateAvailable([{ recordId: this.recordId }]);
            this.poll();
        }, POLL_INTERVAL_MS);
    }

    field(f) {
        if (!this.record) {
            return null;
        }
        const value = getFieldValue(this.record, f);
        return value === undefined ? null : value;
    }

    get loading() {
        return !this.record && !this.recordError;
    }

    get errorMessage() {
        return this.recordError ? format(LOAD_ERROR, readableError(this.recordError)) : null;
    }

    get score() {
        return this.field(CHURN_SCORE);
    }

    get hasScore() {
        return this.score !== null;
    }

    get percent() {
        return this.hasScore ? `${points(this.score)}%` : '';
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

    get modelText() {
        return this.modelVersion ? format(MODEL, this.modelVersion) : null;
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

    get clvSummary() {
        return clvSummary(this.clv, this.field(CLV_HORIZON), this.field(CLV_TIER), this.field(P_ALIVE));
    }

    /** The older lines (CLV, "Still active"), for scores from a gateway that gave no horizon. */
    get hasClv() {
        return this.clv !== null && !this.clvSummary;
    }

    get pAlive() {
        const p = this.field(P_ALIVE);
        return p === null || this.clvSummary ? null : format(STILL_ACTIVE, `${points(p)}%`);
    }

    get clvUnavailable() {
        const reason = this.field(CLV_UNAVAILABLE);
        return reason ? format(CLV_UNAVAILABLE_LABEL, reason) : null;
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
        return this.nbaValue !== null;
    }

    get taskCreated() {
        return Boolean(this.taskCreatedFor) && this.taskCreatedFor === this.nextBestAction;
    }

    get actsWithFlow() {
        return Boolean(this.actionFlowApiName && this.actionFlowApiName.trim());
    }

    get actLabel() {
        return this.actsWithFlow ? NBA_START_FLOW : NBA_CREATE_TASK;
    }

    get actDisabled() {
        return !this.actsWithFlow && (this.creatingTask || this.taskCreated);
    }

    get taskClass() {
        return this.taskFailed ? 'task-message task-error' : 'task-message';
    }

    get trend() {
        return trendOf(this.history);
    }

    get trendClass() {
        return `trend-text trend-${this.trend ? this.trend.direction : 'none'}`;
    }

    get historyErrorMessage() {
        return this.historyError ? format(HISTORY_ERROR, readableError(this.historyError)) : null;
    }

    get sparkViewBox() {
        return `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`;
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
        this.rescoreMessage = RESCORE_REQUESTING;
        try {
            this.statusAtWhenRequested = this.field(STATUS_AT);
            await requestRescore({ accountId: this.recordId });
            this.rescoreMessage = RESCORE_REQUESTED;
            this.stopPolling();
            this.polling = true;
            this.pollsLeft = POLL_ATTEMPTS;
            this.poll();
        } catch (e) {
            this.rescoreFailed = true;
            this.rescoreMessage = format(RESCORE_FAILED, readableError(e));
        } finally {
            this.requesting = false;
        }
    }

    /**
     * Acts on the next best action in one click: starts the admin's flow when the card names one,
     * otherwise creates a Task.
     */
    handleAct() {
        if (this.actsWithFlow) {
            this.startFlow();
        } else {
            this.createTask();
        }
    }

    /** Opens the flow with the Account id and the action as input variables, returning to the record. */
    startFlow() {
        const name = this.actionFlowApiName.trim();
        if (!FLOW_API_NAME.test(name)) {
            this.taskFailed = true;
            this.taskMessage = format(NBA_FLOW_INVALID, name);
            return;
        }
        const query = new URLSearchParams({
            recordId: this.recordId,
            nextBestAction: this.nextBestAction,
            retURL: `/${this.recordId}`
        });
        this.taskFailed = false;
        this.taskMessage = null;
        this[NavigationMixin.Navigate]({
            type: 'standard__webPage',
            attributes: { url: `/flow/${name}?${query.toString()}` }
        });
    }

    /**
     * A Task on this Account, owned by the user, due today, created through Lightning Data Service with
     * the user's own permissions; one per action.
     */
    async createTask() {
        const action = this.nextBestAction;
        if (!action || this.actDisabled) {
            return;
        }
        this.creatingTask = true;
        this.taskFailed = false;
        this.taskMessage = NBA_CREATING_TASK;
        const subject = action.length > TASK_SUBJECT_LENGTH ? action.slice(0, TASK_SUBJECT_LENGTH) : action;
        try {
            await createRecord({
                apiName: 'Task',
                fields: {
                    Subject: subject,
                    WhatId: this.recordId,
                    ActivityDate: today(),
                    Description: format(NBA_TASK_DESCRIPTION, this.nbaReason || '', this.modelVersion || '').trim()
                }
            });
            this.taskCreatedFor = action;
            this.taskMessage = format(NBA_TASK_CREATED, subject);
        } catch (e) {
            this.taskFailed = true;
            this.taskMessage = format(NBA_TASK_FAILED, readableError(e));
        } finally {
            this.creatingTask = false;
        }
    }
}
