import { createElement } from 'lwc';
import getCrossSell from '@salesforce/apex/SextantCrossSellController.getCrossSell';
import SextantCrossSell, { LABELS, MAX_ITEMS, itemsOf, nextCategoryText, percent } from 'c/sextantCrossSell';

jest.mock('@salesforce/apex/SextantCrossSellController.getCrossSell', () => ({ default: jest.fn() }), {
    virtual: true
});

const RECORD_ID = '0015g0000000001AAA';

const HISTORY_VIEW = {
    status: 'ok',
    modelVersion: 'cross_sell-v3',
    result: {
        recordId: RECORD_ID,
        basis: 'history',
        items: [
            {
                item: '01t000000000001AAA',
                name: 'LUNCH BAG RED',
                category: 'BAG',
                score: 0.42,
                because: { item: '01t000000000002AAA', name: 'LUNCH BOX' }
            },
            { item: '01t000000000003AAA', name: 'JUMBO BAG', category: 'BAG', score: 0.3, because: null }
        ],
        nextCategories: [
            { category: 'BAG', share: 0.314 },
            { category: 'BOX', share: 0.2 }
        ],
        unknownItems: [],
        ordersConsidered: 12
    }
};

const POPULARITY_VIEW = {
    status: 'ok',
    modelVersion: 'cross_sell-v3',
    result: {
        recordId: RECORD_ID,
        basis: 'popularity',
        items: [{ item: '01t000000000004AAA', name: 'PARTY BUNTING', category: 'DECOR', score: 0.9, because: null }],
        nextCategories: [{ category: 'other', share: 0.5 }],
        unknownItems: [],
        ordersConsidered: 0
    }
};

function mount() {
    const element = createElement('c-sextant-cross-sell', { is: SextantCrossSell });
    element.recordId = RECORD_ID;
    document.body.appendChild(element);
    return element;
}

// Lets the Apex promise, re-renders and awaited promises settle.
const flush = async () => {
    for (let i = 0; i < 4; i++) {
        // eslint-disable-next-line no-await-in-loop
        await Promise.resolve();
    }
};
const squash = (value) => value.replace(/\s+/g, ' ').trim();
const text = (root, selector) => {
    const node = root.querySelector(selector);
    return node ? squash(node.textContent) : null;
};
const texts = (root, selector) => Array.from(root.querySelectorAll(selector)).map((n) => squash(n.textContent));

describe('c-sextant-cross-sell', () => {
    afterEach(() => {
        while (document.body.firstChild) {
            document.body.removeChild(document.body.firstChild);
        }
        jest.clearAllMocks();
    });

    it('shows a loading state until the answer arrives, then asks once for this account', async () => {
        let answer;
        getCrossSell.mockReturnValue(
            new Promise((resolve) => {
                answer = resolve;
            })
        );
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('.loading[role="status"]')).not.toBeNull();
        expect(text(root, '.loading p')).toBe('Loading suggestions…');
        expect(root.querySelector('lightning-spinner').alternativeText).toBe('Loading suggestions…');
        expect(root.querySelector('.items')).toBeNull();
        await expect(element).toBeAccessible();

        answer(HISTORY_VIEW);
        await flush();
        expect(root.querySelector('.loading')).toBeNull();
        expect(getCrossSell).toHaveBeenCalledTimes(1);
        expect(getCrossSell).toHaveBeenCalledWith({ accountId: RECORD_ID });
    });

    it('shows the products with "because they bought X" and the next category', async () => {
        getCrossSell.mockResolvedValue(HISTORY_VIEW);
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(root.querySelector('lightning-card').title).toBe('Customers like this also buy');
        expect(texts(root, '.item-name')).toEqual(['LUNCH BAG RED', 'JUMBO BAG']);
        const items = root.querySelectorAll('.item');
        expect(text(items[0], '.because')).toBe('because they bought LUNCH BOX');
        expect(items[1].querySelector('.because')).toBeNull();
        expect(text(root, '.next-category')).toBe('Next order likely: BAG (31%)');
        expect(text(root, '.model')).toBe('Model cross_sell-v3');
        expect(root.querySelector('.popularity')).toBeNull();
        expect(root.querySelector('.result').getAttribute('aria-live')).toBe('polite');
        await expect(element).toBeAccessible();
    });

    it('says when the suggestions are best sellers for an account without purchase history', async () => {
        getCrossSell.mockResolvedValue(POPULARITY_VIEW);
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.popularity')).toBe('No purchase history yet: best sellers');
        expect(texts(root, '.item-name')).toEqual(['PARTY BUNTING']);
        expect(root.querySelector('.because')).toBeNull();
        expect(text(root, '.next-category')).toBe('Next order likely: other categories (50%)');
        await expect(element).toBeAccessible();
    });

    it('shows at most five products', async () => {
        const many = Array.from({ length: 8 }, (_, i) => ({
            item: `01t00000000000${i}AAA`,
            name: `PRODUCT ${i}`,
            category: 'BAG',
            score: 1 - i / 10,
            because: null
        }));
        getCrossSell.mockResolvedValue({ ...HISTORY_VIEW, result: { ...HISTORY_VIEW.result, items: many } });
        const element = mount();
        await flush();
        expect(texts(element.shadowRoot, '.item-name')).toEqual([
            'PRODUCT 0',
            'PRODUCT 1',
            'PRODUCT 2',
            'PRODUCT 3',
            'PRODUCT 4'
        ]);
        expect(MAX_ITEMS).toBe(5);
    });

    it('says when there is nothing to suggest, and shows no next category without one', async () => {
        getCrossSell.mockResolvedValue({
            ...HISTORY_VIEW,
            result: { ...HISTORY_VIEW.result, items: [], nextCategories: [] }
        });
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.empty')).toBe('No products to suggest for this account.');
        expect(root.querySelector('.items')).toBeNull();
        expect(root.querySelector('.next-category')).toBeNull();
    });

    it('says that no cross-sell model is trained yet', async () => {
        getCrossSell.mockResolvedValue({ status: 'no_model' });
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.no-model')).toBe('No cross-sell model has been trained yet.');
        expect(root.querySelector('.result')).toBeNull();
        expect(root.querySelector('.error')).toBeNull();
        await expect(element).toBeAccessible();
    });

    it('says that Sextant is switched off', async () => {
        getCrossSell.mockResolvedValue({ status: 'switched_off' });
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        expect(text(root, '.switched-off')).toBe('Sextant scoring is switched off by your administrator.');
        expect(root.querySelector('.result')).toBeNull();
    });

    it('shows an error that names the problem, and tries again on request', async () => {
        getCrossSell.mockRejectedValueOnce({ body: { message: 'Sextant is busy: try again in 30 seconds' } });
        const element = mount();
        await flush();
        const root = element.shadowRoot;
        const error = root.querySelector('.error');
        expect(error.getAttribute('role')).toBe('alert');
        expect(squash(error.textContent)).toBe(
            'Could not load the suggestions: Sextant is busy: try again in 30 seconds'
        );
        expect(root.querySelector('.result')).toBeNull();
        await expect(element).toBeAccessible();

        getCrossSell.mockResolvedValueOnce(HISTORY_VIEW);
        const retry = root.querySelector('lightning-button.retry');
        expect(retry.label).toBe('Try again');
        retry.click();
        await flush();
        expect(getCrossSell).toHaveBeenCalledTimes(2);
        expect(root.querySelector('.error')).toBeNull();
        expect(texts(root, '.item-name')).toEqual(['LUNCH BAG RED', 'JUMBO BAG']);
    });

    it('asks again for another record, not for the same one', async () => {
        getCrossSell.mockResolvedValue(HISTORY_VIEW);
        const element = mount();
        await flush();
        element.recordId = RECORD_ID;
        await flush();
        expect(getCrossSell).toHaveBeenCalledTimes(1);
        element.recordId = '0015g0000000002AAA';
        await flush();
        expect(getCrossSell).toHaveBeenCalledTimes(2);
        expect(getCrossSell).toHaveBeenLastCalledWith({ accountId: '0015g0000000002AAA' });
    });

    describe('helpers', () => {
        it('format shares as whole percentages', () => {
            expect(percent(0.314)).toBe('31%');
            expect(percent(1)).toBe('100%');
        });

        it('name the likeliest next category only', () => {
            expect(nextCategoryText([{ category: 'BOX', share: 0.2 }])).toBe('Next order likely: BOX (20%)');
            expect(nextCategoryText([])).toBeNull();
            expect(nextCategoryText(undefined)).toBeNull();
        });

        it('read items without a result as none', () => {
            expect(itemsOf(null)).toEqual([]);
            expect(itemsOf({ items: null })).toEqual([]);
        });

        it('take every text from a label', () => {
            Object.values(LABELS).forEach((value) => expect(value).not.toMatch(/^c\./));
        });
    });
});
