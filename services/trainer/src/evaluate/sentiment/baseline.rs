//! The classical baseline: TF-IDF over word 1–2-grams (sublinear tf) + multinomial logistic
//! regression, as scikit-learn's `TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)` and
//! `LogisticRegression(C=…)` define them (`ml-anchors.md` §2e: weighted F1 0.6406 at C = 4).
//!
//! Why re-implemented: the baseline must run in the same process, on the same halves, as the
//! model, and the workspace has no linear-model crate; the pieces are small. Tokens follow
//! scikit-learn's default pattern `\b\w\w+\b` on lower-cased text; idf is smoothed
//! (`ln((1 + n) / (1 + df)) + 1`); rows are L2-normalised; the fit minimises
//! `Σ cross-entropy + ‖W‖² / (2C)` (intercepts unpenalised) with L-BFGS.

use std::collections::HashMap;

/// A fitted TF-IDF vocabulary.
#[derive(Debug, Clone)]
pub struct Tfidf {
    index: HashMap<String, u32>,
    idf: Vec<f64>,
}

/// scikit-learn's default tokens: runs of two or more word characters, lower-cased.
fn sk_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut len = 0usize;
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            cur.extend(c.to_lowercase());
            len += 1;
        } else {
            if len >= 2 {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
            len = 0;
        }
    }
    if len >= 2 {
        out.push(cur);
    }
    out
}

fn ngrams(text: &str) -> Vec<String> {
    let toks = sk_tokens(text);
    let mut grams = toks.clone();
    grams.extend(toks.windows(2).map(|w| format!("{} {}", w[0], w[1])));
    grams
}

/// A sparse row: `(feature, value)`.
pub type SparseRow = Vec<(u32, f64)>;

impl Tfidf {
    /// Learns the vocabulary and idf from the training texts.
    #[must_use]
    pub fn fit(texts: &[&str]) -> Self {
        let mut index: HashMap<String, u32> = HashMap::new();
        let mut df: Vec<usize> = Vec::new();
        for t in texts {
            let mut grams = ngrams(t);
            grams.sort_unstable();
            grams.dedup();
            for g in grams {
                let next = index.len() as u32;
                let id = *index.entry(g).or_insert(next);
                if id as usize == df.len() {
                    df.push(0);
                }
                df[id as usize] += 1;
            }
        }
        let n = texts.len() as f64;
        let idf = df
            .iter()
            .map(|&d| ((1.0 + n) / (1.0 + d as f64)).ln() + 1.0)
            .collect();
        Self { index, idf }
    }

    /// Number of features.
    #[must_use]
    pub fn width(&self) -> usize {
        self.idf.len()
    }

    /// The L2-normalised TF-IDF row of `text` (unknown n-grams are dropped).
    #[must_use]
    pub fn transform(&self, text: &str) -> SparseRow {
        let mut counts: HashMap<u32, f64> = HashMap::new();
        for g in ngrams(text) {
            if let Some(&id) = self.index.get(&g) {
                *counts.entry(id).or_insert(0.0) += 1.0;
            }
        }
        let mut row: SparseRow = counts
            .into_iter()
            .map(|(id, tf)| (id, (1.0 + tf.ln()) * self.idf[id as usize]))
            .collect();
        row.sort_unstable_by_key(|(id, _)| *id);
        let norm = row.iter().map(|(_, v)| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|(_, v)| *v /= norm);
        }
        row
    }
}

/// A fitted multinomial logistic regression over sparse rows.
#[derive(Debug, Clone)]
pub struct Logistic {
    classes: usize,
    width: usize,
    /// `width × classes` weights, then `classes` intercepts.
    params: Vec<f64>,
}

impl Logistic {
    /// Minimises `Σ CE + ‖W‖²/(2C)` with L-BFGS (at most `max_iter` iterations).
    #[must_use]
    pub fn fit(
        rows: &[SparseRow],
        labels: &[usize],
        classes: usize,
        width: usize,
        c: f64,
        max_iter: usize,
    ) -> Self {
        let mut model = Self {
            classes,
            width,
            params: vec![0.0; width * classes + classes],
        };
        let objective = |p: &[f64], g: &mut [f64]| loss_grad(p, rows, labels, classes, width, c, g);
        // scikit-learn stops when the largest gradient entry of the *mean* loss is below its
        // `tol` (1e-4); our objective is the sum, so the same point is `1e-4 · n`.
        let gtol = 1e-4 * rows.len().max(1) as f64;
        lbfgs(&mut model.params, objective, gtol, max_iter);
        model
    }

    /// Class probabilities of a row.
    #[must_use]
    pub fn probabilities(&self, row: &SparseRow) -> Vec<f64> {
        let z = logits(&self.params, row, self.classes, self.width);
        softmax(&z)
    }
}

fn logits(p: &[f64], row: &SparseRow, k: usize, width: usize) -> Vec<f64> {
    let mut z = p[width * k..width * k + k].to_vec();
    for &(j, v) in row {
        let w = &p[j as usize * k..(j as usize + 1) * k];
        for (zc, wc) in z.iter_mut().zip(w) {
            *zc += v * wc;
        }
    }
    z
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn loss_grad(
    p: &[f64],
    rows: &[SparseRow],
    labels: &[usize],
    k: usize,
    width: usize,
    c: f64,
    g: &mut [f64],
) -> f64 {
    // Plain index loops: this runs hundreds of times per fit, and unoptimised (debug) builds
    // pay a function call per iterator step.
    g.fill(0.0);
    let mut loss = 0.0;
    let mut prob = vec![0.0; k];
    let bias = width * k;
    for (row, &y) in rows.iter().zip(labels) {
        prob.copy_from_slice(&p[bias..bias + k]);
        let mut e = 0;
        while e < row.len() {
            let (j, v) = row[e];
            let base = j as usize * k;
            let mut cl = 0;
            while cl < k {
                prob[cl] += v * p[base + cl];
                cl += 1;
            }
            e += 1;
        }
        let mut m = f64::NEG_INFINITY;
        for &z in &prob {
            m = m.max(z);
        }
        let mut sum = 0.0;
        for z in prob.iter_mut() {
            *z = (*z - m).exp();
            sum += *z;
        }
        for z in prob.iter_mut() {
            *z /= sum;
        }
        loss -= prob[y].max(1e-300).ln();
        prob[y] -= 1.0;
        let mut e = 0;
        while e < row.len() {
            let (j, v) = row[e];
            let base = j as usize * k;
            let mut cl = 0;
            while cl < k {
                g[base + cl] += v * prob[cl];
                cl += 1;
            }
            e += 1;
        }
        let mut cl = 0;
        while cl < k {
            g[bias + cl] += prob[cl];
            cl += 1;
        }
    }
    let mut i = 0;
    while i < bias {
        loss += p[i] * p[i] / (2.0 * c);
        g[i] += p[i] / c;
        i += 1;
    }
    loss
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let mut s = 0.0;
    let mut i = 0;
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

/// `y += alpha · x`.
fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) {
    let n = x.len().min(y.len());
    let mut i = 0;
    while i < n {
        y[i] += alpha * x[i];
        i += 1;
    }
}

/// Limited-memory BFGS (10 pairs) with a backtracking Armijo line search. The objective is
/// smooth and strictly convex here, so this converges to the unique minimum.
fn lbfgs(x: &mut [f64], f: impl Fn(&[f64], &mut [f64]) -> f64, gtol: f64, max_iter: usize) {
    const M: usize = 10;
    let n = x.len();
    let mut g = vec![0.0; n];
    let mut fx = f(x, &mut g);
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let mut new_x = vec![0.0; n];
    let mut new_g = vec![0.0; n];
    for _ in 0..max_iter {
        let mut gnorm = 0.0f64;
        for v in &g {
            gnorm = gnorm.max(v.abs());
        }
        if gnorm < gtol {
            break;
        }
        // Two-loop recursion: d = -H g.
        let mut q = g.clone();
        let mut alpha = vec![0.0; s_hist.len()];
        for i in (0..s_hist.len()).rev() {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            alpha[i] = rho * dot(&s_hist[i], &q);
            axpy(-alpha[i], &y_hist[i], &mut q);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            _ => 1.0 / dot(&g, &g).sqrt().max(1e-12),
        };
        for v in q.iter_mut() {
            *v *= gamma;
        }
        for i in 0..s_hist.len() {
            let rho = 1.0 / dot(&y_hist[i], &s_hist[i]);
            let beta = rho * dot(&y_hist[i], &q);
            axpy(alpha[i] - beta, &s_hist[i], &mut q);
        }
        let mut d = q;
        for v in d.iter_mut() {
            *v = -*v;
        }
        let mut slope = dot(&g, &d);
        if slope >= 0.0 {
            // Not a descent direction (numerical trouble): restart from steepest descent.
            s_hist.clear();
            y_hist.clear();
            d = g.iter().map(|v| -v).collect();
            slope = dot(&g, &d);
        }
        let mut step = 1.0;
        let mut accepted = false;
        for _ in 0..40 {
            new_x.copy_from_slice(x);
            axpy(step, &d, &mut new_x);
            let f_new = f(&new_x, &mut new_g);
            if f_new <= fx + 1e-4 * step * slope {
                let mut s = new_x.clone();
                axpy(-1.0, x, &mut s);
                let mut y = new_g.clone();
                axpy(-1.0, &g, &mut y);
                let improvement = fx - f_new;
                x.copy_from_slice(&new_x);
                g.copy_from_slice(&new_g);
                if dot(&s, &y) > 1e-12 {
                    s_hist.push(s);
                    y_hist.push(y);
                    if s_hist.len() > M {
                        s_hist.remove(0);
                        y_hist.remove(0);
                    }
                }
                accepted = improvement.abs() > 1e-10 * fx.abs().max(1.0);
                fx = f_new;
                break;
            }
            step *= 0.5;
        }
        if !accepted {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_scikit_learns_default_pattern() {
        assert_eq!(
            sk_tokens("It DOESN'T work!! a b2 __x"),
            vec!["it", "doesn", "work", "b2", "__x"]
        );
        assert_eq!(ngrams("not good").len(), 3);
    }

    #[test]
    fn tfidf_rows_are_unit_length_with_sublinear_tf() {
        let t = Tfidf::fit(&["good good product", "bad product"]);
        // unigrams good, product, bad; bigrams "good good", "good product", "bad product"
        assert_eq!(t.width(), 6);
        let row = t.transform("good good product unknownword");
        let norm: f64 = row.iter().map(|(_, v)| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-12);
        // "good": tf 2 -> 1 + ln 2, idf ln(3/2) + 1; "product": tf 1, idf ln(3/3) + 1 = 1.
        let idf_good = (3.0f64 / 2.0).ln() + 1.0;
        let raw_good = (1.0 + 2f64.ln()) * idf_good;
        let Some(good) = t.index.get("good") else {
            panic!("good is in the vocabulary");
        };
        let Some(product) = t.index.get("product") else {
            panic!("product is in the vocabulary");
        };
        let v = |id: u32| row.iter().find(|(j, _)| *j == id).map_or(0.0, |(_, v)| *v);
        assert!((v(*good) / v(*product) - raw_good).abs() < 1e-12);
    }

    #[test]
    fn logistic_regression_separates_and_reaches_the_optimum() {
        let texts = ["great", "great fine", "awful", "awful bad", "ok", "ok meh"];
        let labels = [2, 2, 0, 0, 1, 1];
        let t = Tfidf::fit(&texts);
        let rows: Vec<SparseRow> = texts.iter().map(|s| t.transform(s)).collect();
        let m = Logistic::fit(&rows, &labels, 3, t.width(), 4.0, 500);
        for (r, &y) in rows.iter().zip(&labels) {
            let p = m.probabilities(r);
            let best = (0..3).fold(0, |b, c| if p[c] > p[b] { c } else { b });
            assert_eq!(best, y, "{p:?}");
        }
        // At the end the gradient is within scikit-learn's tolerance (1e-4 on the mean loss).
        let mut g = vec![0.0; m.params.len()];
        loss_grad(&m.params, &rows, &labels, 3, t.width(), 4.0, &mut g);
        assert!(g.iter().all(|v| v.abs() < 1e-4 * 6.0), "{g:?}");
        // And the fit is not trivially small: the weights moved.
        assert!(m.params.iter().any(|v| v.abs() > 0.1), "{:?}", m.params);
    }
}
