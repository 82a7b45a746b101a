import { LightningElement, api, wire } from 'lwc';
import { getRecord, getFieldValue } from 'lightning/uiRecordApi';
import { bandLabel, format, readableError } from 'c/sextantScore';
import LOCALE from '@salesforce/i18n/locale';
import SENTIMENT from '@salesforce/schema/Case.Sextant_Sentiment__c';
import SENTIMENT_SCORE from '@salesforce/schema/Case.Sextant_Sentiment_Score__c';
import SENTIMENT_MODEL from '@salesforce/schema/Case.Sextant_Sentiment_Model__c';
import SENTIMENT_AT from '@salesforce/schema/Case.Sextant_Sentiment_At__c';
import ACCOUNT_CHURN from '@salesforce/schema/Case.Account.Churn_Score__c';
import ACCOUNT_BAND from '@salesforce/schema/Case.Account.Sextant_Churn_Band__c';
import TITLE from '@salesforce/label/c.Sextant_Case_Title';
import LOADING from '@salesforce/label/c.Sextant_Case_Loading';
import LOAD_ERROR from '@salesforce/label/c.Sextant_Case_Load_Error';
import NOT_JUDGED from '@salesforce/label/c.Sextant_Case_Not_Judged';
import SENTIMENT_LABEL from '@salesforce/label/c.Sextant_Case_Sentiment';
import NEGATIVE from '@salesforce/label/c.Sextant_Case_Negative';
import NEUTRAL from '@salesforce/label/c.Sextant_Case_Neutral';
import POSITIVE from '@salesforce/label/c.Sextant_Case_Positive';
import INTENSITY from '@salesforce/label/c.Sextant_Case_Intensity';
import JUDGED from '@salesforce/label/c.Sextant_Case_Judged';
import ACCOUNT_CHURN_LABEL from '@salesforce/label/c.Sextant_Case_Account_Churn';
import MODEL from '@salesforce/label/c.Sextant_Model';

/**
 * Every field is optional: a user without field-level access to one of them loses that line, not the
 * card; a Case without an Account simply has no churn line.
 */
const FIELDS = [SENTIMENT, SENTIMENT_SCORE, SENTIMENT_MODEL, SENTIMENT_AT, ACCOUNT_CHURN, ACCOUNT_BAND];

/** Every text the card shows comes from a Custom Label, so admins can translate or reword it. */
export const LABELS = { title: TITLE, loading: LOADING, notJudged: NOT_JUDGED, judged: JUDGED };

const SENTIMENTS = { negative: NEGATIVE, neutral: NEUTRAL, positive: POSITIVE };

/** "negative" → "Negative sentiment"; a value outside the restricted picklist is shown as it is. */
export function sentimentText(sentiment) {
    return format(SENTIMENT_LABEL, SENTIMENTS[sentiment] || sentiment);
}

/** The intensity (−1 to 1) with two decimals and its sign, in the user's locale. */
export function intensityText(score) {
    const number = new Intl.NumberFormat(LOCALE, {
        minimumFractionDigits: 2,
        maximumFractionDigits: 2,
        signDisplay: 'exceptZero'
    }).format(Number(score));
    return format(INTENSITY, number);
}

/**
 * The sentiment Sextant judged for this Case (Subject and Description), its intensity, the model and
 * when, and the churn risk of the Case's Account, so an agent sees an unhappy customer of a valuable,
 * at-risk account at a glance. Read through Lightning Data Service with the user's field access.
 */
export default class SextantCaseSentiment extends LightningElement {
    @api recordId;
    labels = LABELS;
    record;
    recordError;

    @wire(getRecord, { recordId: '$recordId', optionalFields: FIELDS })
    wiredRecord({ data, error }) {
        this.record = data;
        this.recordError = error;
    }

    field(f) {
        return this.record ? getFieldValue(this.record, f) : undefined;
    }

    get loading() {
        return !this.record && !this.recordError;
    }

    get errorMessage() {
        return this.recordError ? format(LOAD_ERROR, readableError(this.recordError)) : null;
    }

    get sentiment() {
        return this.field(SENTIMENT);
    }

    get judged() {
        return Boolean(this.sentiment);
    }

    get sentimentLabel() {
        return sentimentText(this.sentiment);
    }

    get sentimentClass() {
        const known = Object.keys(SENTIMENTS).includes(this.sentiment);
        return `sentiment sentiment-${known ? this.sentiment : 'other'}`;
    }

    get intensity() {
        const score = this.field(SENTIMENT_SCORE);
        return score === null || score === undefined ? null : intensityText(score);
    }

    get modelText() {
        const model = this.field(SENTIMENT_MODEL);
        return model ? format(MODEL, model) : null;
    }

    get judgedAt() {
        return this.field(SENTIMENT_AT);
    }

    get accountChurn() {
        const score = this.field(ACCOUNT_CHURN);
        if (score === null || score === undefined) {
            return null;
        }
        const band = this.field(ACCOUNT_BAND);
        const percent = `${Math.round(Number(score) * 100)}%`;
        return format(ACCOUNT_CHURN_LABEL, band ? `${percent}, ${bandLabel(band)}` : percent);
    }
}
