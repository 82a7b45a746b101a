//! Evaluation metrics and the ROC plot.
//!
//! AUC is computed from ranks (Mann–Whitney U) with ties averaged, which equals the area under
//! the step ROC curve and matches scikit-learn's `roc_auc_score`.

/// Area under the ROC curve; `None` when one class is absent.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n_pos = labels.iter().filter(|l| **l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 || scores.len() != labels.len() {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let u = rank_sum_pos - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// Share of correct predictions at a threshold.
pub fn accuracy(scores: &[f64], labels: &[bool], threshold: f64) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let right = scores
        .iter()
        .zip(labels)
        .filter(|(s, l)| (**s >= threshold) == **l)
        .count();
    right as f64 / labels.len() as f64
}

/// Mean binary cross-entropy, with probabilities clipped to `[1e-15, 1 - 1e-15]`.
pub fn log_loss(scores: &[f64], labels: &[bool]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let total: f64 = scores
        .iter()
        .zip(labels)
        .map(|(s, l)| {
            let p = s.clamp(1e-15, 1.0 - 1e-15);
            if *l { -p.ln() } else { -(1.0 - p).ln() }
        })
        .sum();
    total / labels.len() as f64
}

/// ROC curve points `(false positive rate, true positive rate)`, from (0,0) to (1,1).
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Vec<(f64, f64)> {
    let n_pos = labels.iter().filter(|l| **l).count().max(1) as f64;
    let n_neg = labels.iter().filter(|l| !**l).count().max(1) as f64;
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        for &k in &idx[i..=j] {
            if labels[k] { tp += 1.0 } else { fp += 1.0 }
        }
        points.push((fp / n_neg, tp / n_pos));
        i = j + 1;
    }
    points
}

/// An SVG drawing of the ROC curve with the chance diagonal and the AUC in the title.
pub fn roc_svg(points: &[(f64, f64)], auc: f64, title: &str) -> String {
    let (w, h, m) = (420.0, 420.0, 50.0);
    let x = |v: f64| m + v * (w - 2.0 * m);
    let y = |v: f64| h - m - v * (h - 2.0 * m);
    let path: Vec<String> = points
        .iter()
        .map(|(fx, ty)| format!("{:.1},{:.1}", x(*fx), y(*ty)))
        .collect();
    let mut ticks = String::new();
    for t in [0.0, 0.25, 0.5, 0.75, 1.0] {
        ticks.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{t}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{t}</text>",
            x(t), h - m + 16.0, m - 6.0, y(t) + 4.0
        ));
    }
    let title = title.replace('&', "&amp;").replace('<', "&lt;");
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"{cx}\" y=\"24\" font-size=\"14\" text-anchor=\"middle\">{title} — ROC, AUC {auc:.3}</text>",
            "<rect x=\"{m}\" y=\"{m}\" width=\"{iw}\" height=\"{ih}\" fill=\"none\" stroke=\"#888\"/>",
            "<line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#bbb\" stroke-dasharray=\"4 4\"/>",
            "<polyline points=\"{path}\" fill=\"none\" stroke=\"#0b6bcb\" stroke-width=\"2\"/>",
            "{ticks}",
            "<text x=\"{cx}\" y=\"{xl}\" font-size=\"12\" text-anchor=\"middle\">false positive rate</text>",
            "<text x=\"14\" y=\"{cy}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {cy})\">true positive rate</text>",
            "</svg>\n"
        ),
        w = w,
        h = h,
        m = m,
        iw = w - 2.0 * m,
        ih = h - 2.0 * m,
        cx = w / 2.0,
        cy = h / 2.0,
        xl = h - 12.0,
        x0 = x(0.0),
        y0 = y(0.0),
        x1 = x(1.0),
        y1 = y(1.0),
        path = path.join(" "),
        ticks = ticks,
        title = title,
        auc = auc
    )
}

/// An SVG line chart of a series (e.g. the training loss per epoch).
pub fn line_svg(values: &[f64], title: &str, x_label: &str, y_label: &str) -> String {
    lines_svg(&[("", values)], title, x_label, y_label)
}

/// An SVG line chart of named series over the same x positions `1..=n` (e.g. hit rate at k for a
/// model and a baseline), on one shared y scale, with a legend when there are several.
pub fn lines_svg(series: &[(&str, &[f64])], title: &str, x_label: &str, y_label: &str) -> String {
    const COLOURS: [&str; 4] = ["#c2410c", "#1d4ed8", "#15803d", "#7c3aed"];
    let (w, h, m) = (520.0, 320.0, 55.0);
    let all = || series.iter().flat_map(|(_, v)| v.iter().copied());
    let max = all().fold(f64::MIN, f64::max);
    let min = all().fold(f64::MAX, f64::min);
    let span = if (max - min).abs() < 1e-12 {
        1.0
    } else {
        max - min
    };
    let len = series.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
    let n = len.max(2) as f64 - 1.0;
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let mut lines = String::new();
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let pts: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "{:.1},{:.1}",
                    m + i as f64 / n * (w - 2.0 * m),
                    h - m - (v - min) / span * (h - 2.0 * m)
                )
            })
            .collect();
        lines.push_str(&format!(
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            pts.join(" ")
        ));
        if series.len() > 1 {
            let y = m + 14.0 + 16.0 * k as f64;
            lines.push_str(&format!(
                "<line x1=\"{x1}\" y1=\"{yl}\" x2=\"{x2}\" y2=\"{yl}\" stroke=\"{colour}\" stroke-width=\"2\"/><text x=\"{xt}\" y=\"{y}\" font-size=\"11\">{name}</text>",
                x1 = m + 8.0,
                x2 = m + 26.0,
                yl = y - 4.0,
                xt = m + 30.0,
                name = esc(name)
            ));
        }
    }
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"{cx}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{title}</text>",
            "<rect x=\"{m}\" y=\"{m}\" width=\"{iw}\" height=\"{ih}\" fill=\"none\" stroke=\"#888\"/>",
            "{lines}",
            "<text x=\"{lx}\" y=\"{ty}\" font-size=\"11\" text-anchor=\"end\">{max:.3}</text>",
            "<text x=\"{lx}\" y=\"{by}\" font-size=\"11\" text-anchor=\"end\">{min:.3}</text>",
            "<text x=\"{m}\" y=\"{xt}\" font-size=\"11\">1</text><text x=\"{rx}\" y=\"{xt}\" font-size=\"11\" text-anchor=\"end\">{len}</text>",
            "<text x=\"{cx}\" y=\"{xl}\" font-size=\"12\" text-anchor=\"middle\">{xlab}</text>",
            "<text x=\"14\" y=\"{cy}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {cy})\">{ylab}</text>",
            "</svg>\n"
        ),
        w = w,
        h = h,
        m = m,
        iw = w - 2.0 * m,
        ih = h - 2.0 * m,
        cx = w / 2.0,
        cy = h / 2.0,
        lines = lines,
        title = esc(title),
        lx = m - 4.0,
        ty = m + 4.0,
        by = h - m,
        max = max,
        min = min,
        xt = h - m + 14.0,
        rx = w - m,
        len = len,
        xl = h - 10.0,
        xlab = esc(x_label),
        ylab = esc(y_label)
    )
}

/// An SVG confusion matrix: one row per true class, one column per predicted class, each cell
/// shaded by its share of the row (recall) and labelled with its count.
pub fn confusion_svg(classes: &[&str], counts: &[Vec<usize>], title: &str) -> String {
    let n = classes.len();
    let (cell, left, top) = (90.0, 110.0, 70.0);
    let w = left + cell * n as f64 + 20.0;
    let h = top + cell * n as f64 + 50.0;
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;");
    let mut body = String::new();
    for (t, row) in counts.iter().enumerate().take(n) {
        let total: usize = row.iter().sum();
        for (p, &c) in row.iter().enumerate().take(n) {
            let share = if total == 0 {
                0.0
            } else {
                c as f64 / total as f64
            };
            let (x, y) = (left + cell * p as f64, top + cell * t as f64);
            let ink = if share > 0.5 { "white" } else { "black" };
            body.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"#0b6bcb\" fill-opacity=\"{share:.3}\" stroke=\"#888\"/>\
                 <text x=\"{tx}\" y=\"{ty}\" font-size=\"14\" text-anchor=\"middle\" fill=\"{ink}\">{c}</text>",
                tx = x + cell / 2.0,
                ty = y + cell / 2.0 + 5.0,
            ));
        }
    }
    for (i, name) in classes.iter().enumerate() {
        body.push_str(&format!(
            "<text x=\"{lx}\" y=\"{ly}\" font-size=\"12\" text-anchor=\"end\">{name}</text>\
             <text x=\"{cx}\" y=\"{cy}\" font-size=\"12\" text-anchor=\"middle\">{name}</text>",
            lx = left - 8.0,
            ly = top + cell * i as f64 + cell / 2.0 + 4.0,
            cx = left + cell * i as f64 + cell / 2.0,
            cy = top - 8.0,
            name = esc(name),
        ));
    }
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"{cx}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{title}</text>",
            "<text x=\"{px}\" y=\"44\" font-size=\"12\" text-anchor=\"middle\">predicted</text>",
            "<text x=\"14\" y=\"{ay}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {ay})\">true</text>",
            "{body}</svg>\n"
        ),
        w = w,
        h = h,
        cx = w / 2.0,
        px = left + cell * n as f64 / 2.0,
        ay = top + cell * n as f64 / 2.0,
        title = esc(title),
        body = body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computed_values() {
        // Perfect, inverted and chance orderings.
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        // sklearn.metrics.roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]),
            Some(0.75)
        );
        // Ties count half: all scores equal → 0.5.
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        assert_eq!(roc_auc(&[0.5, 0.6], &[true, true]), None);
    }

    #[test]
    fn accuracy_and_log_loss() {
        assert_eq!(
            accuracy(&[0.9, 0.2, 0.6, 0.4], &[true, false, false, true], 0.5),
            0.5
        );
        let ll = log_loss(&[0.8, 0.3], &[true, false]);
        assert!((ll - (-(0.8f64.ln()) - 0.7f64.ln()) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn roc_curve_ends_at_one_one_and_its_area_is_the_auc() {
        let scores = [0.1, 0.4, 0.35, 0.8, 0.7, 0.2];
        let labels = [false, false, true, true, false, true];
        let pts = roc_curve(&scores, &labels);
        assert_eq!(pts.first(), Some(&(0.0, 0.0)));
        assert_eq!(pts.last(), Some(&(1.0, 1.0)));
        let area: f64 = pts
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert!((area - roc_auc(&scores, &labels).expect("auc")).abs() < 1e-12);
        let svg = roc_svg(&pts, 0.5, "churn-v1");
        assert!(svg.starts_with("<svg") && svg.contains("AUC 0.500") && svg.contains("polyline"));
    }

    #[test]
    fn the_confusion_matrix_shows_every_count_shaded_by_row_share() {
        let svg = confusion_svg(
            &["negative", "positive"],
            &[vec![3, 1], vec![0, 4]],
            "a <model>",
        );
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains(">3</text>") && svg.contains(">1</text>") && svg.contains(">4</text>")
        );
        assert!(
            svg.contains("fill-opacity=\"0.750\""),
            "3 of 4 in the first row"
        );
        assert!(
            svg.contains("fill-opacity=\"1.000\""),
            "4 of 4 in the second row"
        );
        assert!(svg.contains("a &lt;model>"), "title escaped");
    }
}
