//! The chart people look at for a BTYD model: mean holdout purchases per calibration frequency,
//! actual next to each model's conditional expectation (Fader, Hardie & Lee 2005, fig. 4).

use std::fmt::Write as _;

use super::FrequencyBin;

/// Colours of the series, in order (actual first).
const COLOURS: [&str; 5] = ["#222222", "#0b6bcb", "#d9480f", "#2b8a3e", "#7048e8"];

/// SVG line chart: one line per series over the frequency bins. `names[j]` labels `bin.means[j]`.
#[must_use]
pub fn holdout_bins_svg(
    bins: &[FrequencyBin],
    names: &[&str],
    title: &str,
    x_label: &str,
) -> String {
    let (w, h, m) = (560.0, 400.0, 56.0);
    let n = bins.len().max(2);
    let top = bins
        .iter()
        .flat_map(|b| b.means.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.1;
    let x = |i: usize| m + i as f64 * (w - 2.0 * m) / (n - 1) as f64;
    let y = |v: f64| h - m - v / top * (h - 2.0 * m);
    let mut body = String::new();
    for (j, name) in names.iter().enumerate() {
        let colour = COLOURS[j % COLOURS.len()];
        let pts: Vec<String> = bins
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.means.get(j).map(|v| format!("{:.1},{:.1}", x(i), y(*v))))
            .collect();
        let dash = if j == 0 {
            ""
        } else {
            " stroke-dasharray=\"6 3\""
        };
        let _ = write!(
            body,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
            pts.join(" ")
        );
        let ly = m + 8.0 + 18.0 * j as f64;
        let _ = write!(
            body,
            "<line x1=\"{:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\">{}</text>",
            m + 10.0,
            m + 34.0,
            m + 40.0,
            ly + 4.0,
            escape(name)
        );
    }
    for (i, b) in bins.iter().enumerate() {
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" fill=\"#777\" text-anchor=\"middle\">n={}</text>",
            x(i),
            h - m + 16.0,
            escape(&b.label),
            x(i),
            h - m + 28.0,
            b.customers
        );
    }
    for k in 0..=4 {
        let v = top * f64::from(k) / 4.0;
        let _ = write!(
            body,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v:.2}</text><line x1=\"{m}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>",
            m - 6.0,
            y(v) + 4.0,
            y(v),
            w - m,
            y(v)
        );
    }
    format!(
        concat!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"{cx}\" y=\"24\" font-size=\"14\" text-anchor=\"middle\">{title}</text>",
            "<rect x=\"{m}\" y=\"{m}\" width=\"{iw}\" height=\"{ih}\" fill=\"none\" stroke=\"#888\"/>",
            "{body}",
            "<text x=\"{cx}\" y=\"{xl}\" font-size=\"12\" text-anchor=\"middle\">{x_label}</text>",
            "<text x=\"14\" y=\"{cy}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {cy})\">mean purchases in the holdout</text>",
            "</svg>\n"
        ),
        w = w,
        h = h,
        m = m,
        iw = w - 2.0 * m,
        ih = h - 2.0 * m,
        cx = w / 2.0,
        cy = h / 2.0,
        xl = h - 8.0,
        title = escape(title),
        x_label = escape(x_label),
        body = body
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_line_per_series_and_labels_the_bins() {
        let bins = vec![
            FrequencyBin {
                label: "0".into(),
                customers: 10,
                means: vec![0.2, 0.25],
            },
            FrequencyBin {
                label: "1+".into(),
                customers: 3,
                means: vec![1.5, 1.2],
            },
        ];
        let svg = holdout_bins_svg(&bins, &["actual", "BG/NBD <fit>"], "CDNOW & co", "x");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("n=10") && svg.contains("1+"));
        assert!(svg.contains("BG/NBD &lt;fit&gt;") && svg.contains("CDNOW &amp; co"));
    }
}
