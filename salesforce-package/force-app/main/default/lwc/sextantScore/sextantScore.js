import { LightningElement, api, wire } from 'lwc';
import { getRecord, getFieldValue } from 'lightning/uiRecordApi';
import CHURN_SCORE from '@salesforce/schema/Account.Churn_Score__c';
import MODEL_VERSION from '@salesforce/schema/Account.Sextant_Model_Version__c';
import SCORED_AT from '@salesforce/schema/Account.Sextant_Scored_At__c';
import requestRescore from '@salesforce/apex/SextantScoreController.requestRescore';

const FIELDS = [CHURN_SCORE, MODEL_VERSION, SCORED_AT];

/** Risk bands shown to users; the thresholds match SextantScoreController.riskBand. */
export function riskBand(score) {
    if (score === null || score === undefined) {
        return 'unscored';
    }
    if (score >= 0.6) {
        return 'high';
    }
    return score >= 0.3 ? 'medium' : 'low';
}

export default class SextantScore extends LightningElement {
    @api recordId;
    record;
    error;
    rescoreMessage;

    @wire(getRecord, { recordId: '$recordId', fields: FIELDS })
    wiredRecord({ data, error }) {
        this.record = data;
        this.error = error;
    }

    get score() {
        return this.record ? getFieldValue(this.record, CHURN_SCORE) : null;
    }

    get hasScore() {
        return this.score !== null && this.score !== undefined;
    }

    get percent() {
        return this.hasScore ? `${Math.round(this.score * 100)}%` : '';
    }

    get band() {
        return riskBand(this.score);
    }

    get bandLabel() {
        return { high: 'High churn risk', medium: 'Medium churn risk', low: 'Low churn risk' }[this.band] || '';
    }

    get bandClass() {
        return `band band-${this.band}`;
    }

    get modelVersion() {
        return this.record ? getFieldValue(this.record, MODEL_VERSION) : null;
    }

    get scoredAt() {
        return this.record ? getFieldValue(this.record, SCORED_AT) : null;
    }

    get errorMessage() {
        if (!this.error) {
            return null;
        }
        return (this.error.body && this.error.body.message) || this.error.message || 'Could not load the score';
    }

    async handleRescore() {
        this.rescoreMessage = 'Scoring…';
        try {
            await requestRescore({ accountId: this.recordId });
            this.rescoreMessage = 'A new score was requested; it appears here within a minute.';
        } catch (e) {
            this.rescoreMessage = (e && e.body && e.body.message) || 'The re-score request failed.';
        }
    }
}
