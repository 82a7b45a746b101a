import { LightningElement, api } from 'lwc';
import getCrossSell from '@salesforce/apex/SextantCrossSellController.getCrossSell';
import { format, readableError } from 'c/sextantScore';
import LOCALE from '@salesforce/i18n/locale';
import TITLE from '@salesforce/label/c.Sextant_Cross_Sell_Title';
import LOADING from '@salesforce/label/c.Sextant_Cross_Sell_Loading';
import LOAD_ERROR from '@salesforce/label/c.Sextant_Cross_Sell_Load_Error';
import BECAUSE from '@salesforce/label/c.Sextant_Cross_Sell_Because';
import POPULARITY from '@salesforce/label/c.Sextant_Cross_Sell_Popularity';
import NEXT_CATEGORY from '@salesforce/label/c.Sextant_Cross_Sell_Next_Category';
import OTHER_CATEGORY from '@salesforce/label/c.Sextant_Cross_Sell_Other_Category';
import NO_MODEL from '@salesforce/label/c.Sextant_Cross_Sell_No_Model';
import EMPTY from '@salesforce/label/c.Sextant_Cross_Sell_Empty';
import RETRY from '@salesforce/label/c.Sextant_Cross_Sell_Retry';
import SWITCHED_OFF from '@salesforce/label/c.Sextant_Switched_Off';
import MODEL from '@salesforce/label/c.Sextant_Model';

/** The card shows at most this many products (the controller asks for as many). */
export const MAX_ITEMS = 5;

/** Every text the card shows comes from a Custom Label, so admins can translate or reword it. */
export const LABELS = {
    title: TITLE,
    loading: LOADING,
    popularity: POPULARITY,
    noModel: NO_MODEL,
    empty: EMPTY,
    retry: RETRY,
    switchedOff: SWITCHED_OFF
};

/** A share (0..1) as a whole percentage in the user's locale: 0.314 → "31%". */
export function percent(share) {
    return new Intl.NumberFormat(LOCALE, { style: 'percent', maximumFractionDigits: 0 }).format(Number(share));
}

/** "Next order likely: BAG (31%)" for the likeliest category; null without one. */
export function nextCategoryText(nextCategories) {
    const best = Array.isArray(nextCategories) && nextCategories.length ? nextCategories[0] : null;
    if (!best || !best.category) {
        return null;
    }
    // The gateway names everything outside the categories it keeps `other`.
    const name = best.category === 'other' ? OTHER_CATEGORY : best.category;
    return format(NEXT_CATEGORY, name, percent(best.share));
}

/** The products to show, best first, each with its "because they bought X" when the gateway gives one. */
export function itemsOf(result) {
    const items = result && Array.isArray(result.items) ? result.items.slice(0, MAX_ITEMS) : [];
    return items.map((i, index) => ({
        key: `${index}-${i.item}`,
        name: i.name,
        category: i.category,
        because: i.because && i.because.name ? format(BECAUSE, i.because.name) : null
    }));
}

/**
 * "Customers like this also buy": the products this Account is likely to buy next (with the purchase
 * that suggests each), or best sellers when it has no purchase the model knows, and the likeliest
 * category of its next order. Asked from Sextant each time the page opens (never cached: a new order
 * changes the answer), through SextantCrossSellController.
 */
export default class SextantCrossSell extends LightningElement {
    labels = LABELS;
    loading = true;
    view;
    error;
    _recordId;

    @api
    get recordId() {
        return this._recordId;
    }
    set recordId(value) {
        const changed = value !== this._recordId;
        this._recordId = value;
        if (changed && value) {
            this.load();
        }
    }

    async load() {
        this.loading = true;
        this.error = undefined;
        try {
            this.view = await getCrossSell({ accountId: this._recordId });
        } catch (e) {
            this.view = undefined;
            this.error = e;
        } finally {
            this.loading = false;
        }
    }

    handleRetry() {
        this.load();
    }

    get errorMessage() {
        return this.error ? format(LOAD_ERROR, readableError(this.error)) : null;
    }

    get switchedOff() {
        return !this.loading && !this.error && this.view && this.view.status === 'switched_off';
    }

    get noModel() {
        return !this.loading && !this.error && this.view && this.view.status === 'no_model';
    }

    get result() {
        return !this.loading && !this.error && this.view && this.view.status === 'ok' ? this.view.result : null;
    }

    get items() {
        return itemsOf(this.result);
    }

    get hasItems() {
        return this.items.length > 0;
    }

    get popularity() {
        return this.result !== null && this.result.basis === 'popularity';
    }

    get nextCategory() {
        return this.result ? nextCategoryText(this.result.nextCategories) : null;
    }

    get modelText() {
        return this.result && this.view.modelVersion ? format(MODEL, this.view.modelVersion) : null;
    }
}
