//! Small inline SVG charts for the HTML report, written by hand so the report needs no script
//! and no asset from anywhere: line charts over time, a heatmap, and bars against a threshold.

use std::fmt::Write;

/// Colours for series, chosen to stay apart for common colour blindness
/// (Okabe and Ito's palette, with black swapped for a grey-blue).
pub const PALETTE: [&str; 8] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#5D6D7E"];
/// Failing marks.
pub const FAIL: &str = "#C62828";

/// Escape text for XML and HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c != '\n' && crate::terminal::is_unsafe(c) => out.push_str(&crate::terminal::html_reference(c)),
            _ => out.push(ch),
        }
    }
    out
}

/// A number as a label: no trailing zeros, at most one decimal above 10.
pub fn num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Round tick values covering `lo..=hi`, about `count` of them (1, 2 or 5 times a power of ten apart).
pub fn ticks(lo: f64, hi: f64, count: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || count == 0 {
        return Vec::new();
    }
    let span = if hi > lo { hi - lo } else { hi.abs().max(1.0) };
    let raw = span / count as f64;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power);
    let start = (lo / step).floor() * step;
    let mut out = Vec::new();
    let mut v = start;
    while v <= hi + step * 0.5 && out.len() < 50 {
        out.push((v / step).round() * step);
        v += step;
    }
    out
}

/// One line of a line chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A line chart of `series` against time, with an optional threshold line.
/// An empty or pointless chart says "no samples" instead of drawing axes.
pub fn line_chart(title: &str, y_unit: &str, series: &[Series], threshold: Option<f64>) -> String {
    let (w, h) = (520.0, 230.0);
    let (left, right, top, bottom) = (56.0, 96.0, 28.0, 34.0);
    let pts: Vec<(f64, f64)> =
        series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"><title>{t}</title><text x="8" y="17" class="ct">{t}</text>"#,
        t = esc(title)
    );
    if pts.is_empty() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="muted" text-anchor="middle">no samples</text></svg>"#,
            w / 2.0,
            h / 2.0
        );
        return out;
    }
    let xmin = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let xmax = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let mut ymin = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut ymax = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if let Some(t) = threshold {
        ymin = ymin.min(t);
        ymax = ymax.max(t);
    }
    let yt = ticks(ymin, ymax, 4);
    let (y0, y1) = (yt.first().copied().unwrap_or(ymin), yt.last().copied().unwrap_or(ymax));
    let (y0, y1) = if y1 > y0 { (y0, y1) } else { (y0 - 1.0, y0 + 1.0) };
    let (x0, x1) = if xmax > xmin { (xmin, xmax) } else { (xmin, xmin + 1.0) };
    let (pw, ph) = (w - left - right, h - top - bottom);
    let sx = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let sy = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;
    for t in &yt {
        let y = sy(*t);
        let _ = write!(
            out,
            r#"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            left + pw,
            left - 6.0,
            y + 4.0,
            num(*t)
        );
    }
    for t in ticks(x0, x1, 5).into_iter().filter(|t| *t >= x0 && *t <= x1) {
        let x = sx(t);
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            top + ph + 16.0,
            num(t)
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{left}" x2="{left}" y1="{top}" y2="{b}" class="axis"/><line x1="{left}" x2="{r}" y1="{b}" y2="{b}" class="axis"/><text x="{cx}" y="{by}" class="tick" text-anchor="middle">time (s)</text><text x="12" y="{cy}" class="tick" transform="rotate(-90 12 {cy})" text-anchor="middle">{u}</text>"#,
        b = top + ph,
        r = left + pw,
        cx = left + pw / 2.0,
        by = h - 4.0,
        cy = top + ph / 2.0,
        u = esc(y_unit)
    );
    if let Some(t) = threshold {
        let y = sy(t);
        let _ = write!(
            out,
            r#"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="threshold"/><text x="{}" y="{:.1}" class="tick fail" text-anchor="end">min {}</text>"#,
            left + pw,
            left + pw - 4.0,
            y + 13.0,
            num(t)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let path: Vec<String> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        if !path.is_empty() {
            let _ = write!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="1.6"><title>{}</title></polyline>"#,
                path.join(" "),
                esc(&s.label)
            );
        }
        let ly = top + 6.0 + i as f64 * 15.0;
        if i < 12 {
            let lx = left + pw + 10.0;
            let _ = write!(
                out,
                r#"<rect x="{lx}" y="{:.1}" width="10" height="3" fill="{color}"/><text x="{}" y="{:.1}" class="tick">{}</text>"#,
                ly,
                lx + 14.0,
                ly + 4.0,
                esc(&s.label)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// Colour of a heatmap cell: light to dark blue with the value's share of `max`.
fn blue(share: f64) -> String {
    let s = share.clamp(0.0, 1.0);
    let mix = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    format!("#{:02X}{:02X}{:02X}", mix(232.0, 8.0), mix(242.0, 81.0), mix(252.0, 156.0))
}

/// An n x n matrix of GB/s, rows sending to columns; cells below `threshold` are red.
pub fn heatmap(title: &str, labels: &[String], values: &[Vec<Option<f64>>], threshold: Option<f64>) -> String {
    let n = labels.len();
    let cell = 44.0;
    let (left, top) = (54.0, 44.0);
    let (w, h) = (left + cell * n as f64 + 12.0, top + cell * n as f64 + 30.0);
    let max = values.iter().flatten().flatten().copied().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"><title>{t}</title><text x="8" y="17" class="ct">{t}</text>"#,
        t = esc(title)
    );
    for (i, l) in labels.iter().enumerate() {
        let c = left + cell * i as f64 + cell / 2.0;
        let r = top + cell * i as f64 + cell / 2.0 + 4.0;
        let _ =
            write!(out, r#"<text x="{c:.1}" y="{}" class="tick" text-anchor="middle">{}</text>"#, top - 6.0, esc(l));
        let _ = write!(out, r#"<text x="{}" y="{r:.1}" class="tick" text-anchor="end">{}</text>"#, left - 6.0, esc(l));
    }
    for (i, row) in values.iter().enumerate().take(n) {
        for (j, v) in row.iter().enumerate().take(n) {
            let (x, y) = (left + cell * j as f64, top + cell * i as f64);
            let (fill, text, class) = match v {
                Some(v) if threshold.is_some_and(|t| *v < t) => (FAIL.to_string(), num(*v), "cv light"),
                Some(v) => {
                    let share = if max > 0.0 { v / max } else { 0.0 };
                    (blue(share), num(*v), if share > 0.55 { "cv light" } else { "cv" })
                }
                None => ("#EEEEEE".to_string(), if i == j { String::new() } else { "?".into() }, "cv"),
            };
            let _ = write!(
                out,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#FFFFFF"><title>{} to {}: {}</title></rect><text x="{:.1}" y="{:.1}" class="{class}" text-anchor="middle">{}</text>"##,
                esc(&labels[i]),
                esc(&labels[j]),
                esc(&text),
                x + cell / 2.0,
                y + cell / 2.0 + 4.0,
                esc(&text)
            );
        }
    }
    let note = match threshold {
        Some(t) => format!("GB/s, row sends to column; red: below {}", num(t)),
        None => "GB/s, row sends to column".to_string(),
    };
    let _ = write!(out, r#"<text x="{left}" y="{}" class="tick">{}</text></svg>"#, h - 8.0, esc(&note));
    out
}

/// One horizontal bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub threshold: Option<f64>,
}

/// Horizontal bars with each bar's threshold marked; a bar below it is red.
pub fn bars(title: &str, unit: &str, items: &[Bar]) -> String {
    let row = 20.0;
    let (left, right, top) = (84.0, 70.0, 28.0);
    let w = 520.0;
    let h = top + row * items.len() as f64 + 24.0;
    let pw = w - left - right;
    let max =
        items.iter().flat_map(|b| [Some(b.value), b.threshold]).flatten().filter(|v| v.is_finite()).fold(0.0, f64::max);
    let scale = if max > 0.0 { pw / (max * 1.05) } else { 0.0 };
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"><title>{t}</title><text x="8" y="17" class="ct">{t}</text>"#,
        t = esc(title)
    );
    for (i, b) in items.iter().enumerate() {
        let y = top + row * i as f64;
        let failing = b.threshold.is_some_and(|t| b.value < t);
        let color = if failing { FAIL } else { PALETTE[2] };
        let len = if b.value.is_finite() { (b.value.max(0.0) * scale).max(1.0) } else { 0.0 };
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text><rect x="{left}" y="{:.1}" width="{len:.1}" height="{}" fill="{color}"><title>{}: {} {}</title></rect><text x="{:.1}" y="{:.1}" class="tick{}">{} {}</text>"#,
            left - 6.0,
            y + 13.0,
            esc(&b.label),
            y + 3.0,
            row - 6.0,
            esc(&b.label),
            num(b.value),
            esc(unit),
            left + len + 4.0,
            y + 13.0,
            if failing { " fail" } else { "" },
            num(b.value),
            esc(unit)
        );
        if let Some(t) = b.threshold {
            let x = left + t * scale;
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" class="threshold"/>"#,
                y + 1.0,
                y + row - 1.0
            );
        }
    }
    let _ = write!(out, r#"<text x="{left}" y="{}" class="tick">dashed: minimum</text></svg>"#, h - 6.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tag balance and attribute quoting: enough to catch a broken document.
    fn well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = rest[start..].find('>').expect("unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap_or_default().to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    fn coords(svg: &str) -> Vec<(f64, f64)> {
        let start = svg.find("points=\"").expect("a polyline") + 8;
        let end = svg[start..].find('"').expect("end") + start;
        svg[start..end]
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').expect("x,y");
                (x.parse().expect("x"), y.parse().expect("y"))
            })
            .collect()
    }

    #[test]
    fn a_line_chart_maps_time_left_to_right_and_higher_values_up() {
        let s = Series { label: "GPU0 <x>".into(), points: vec![(0.0, 700.0), (30.0, 790.0), (60.0, 780.0)] };
        let svg = line_chart("GEMM", "TFLOP/s", &[s], Some(720.0));
        well_formed(&svg);
        let c = coords(&svg);
        assert!(c[0].0 < c[1].0 && c[1].0 < c[2].0, "{c:?}");
        assert!(c[1].1 < c[0].1, "790 is drawn above 700: {c:?}");
        assert!(svg.contains("class=\"threshold\"") && svg.contains("min 720"));
        assert!(svg.contains("GPU0 &lt;x&gt;"), "labels are escaped");
        assert!(line_chart("t", "u", &[], None).contains("no samples"));
    }

    #[test]
    fn heatmap_marks_pairs_below_the_threshold() {
        let labels: Vec<String> = (0..3).map(|i| format!("GPU{i}")).collect();
        let v = vec![
            vec![None, Some(380.0), Some(379.0)],
            vec![Some(381.0), None, Some(120.0)],
            vec![Some(378.0), Some(382.0), None],
        ];
        let svg = heatmap("P2P", &labels, &v, Some(335.0));
        well_formed(&svg);
        assert_eq!(svg.matches(&format!("fill=\"{FAIL}\"")).count(), 1, "only GPU1 to GPU2 fails");
        assert!(svg.contains("GPU1 to GPU2: 120"));
        assert_eq!(svg.matches("<rect").count(), 9);
    }

    #[test]
    fn bars_are_proportional_and_red_below_threshold() {
        let items = vec![
            Bar { label: "GPU0 h2d".into(), value: 52.0, threshold: Some(48.0) },
            Bar { label: "GPU1 h2d".into(), value: 26.0, threshold: Some(48.0) },
        ];
        let svg = bars("Host links", "GB/s", &items);
        well_formed(&svg);
        let widths: Vec<f64> = svg
            .match_indices("width=\"")
            .skip(1)
            .map(|(i, _)| {
                let s = &svg[i + 7..];
                s[..s.find('"').expect("end")].parse().expect("width")
            })
            .collect();
        assert!((widths[0] / widths[1] - 2.0).abs() < 0.01, "{widths:?}");
        assert_eq!(svg.matches(&format!("fill=\"{FAIL}\"")).count(), 1);
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(ticks(0.0, 100.0, 4), vec![0.0, 50.0, 100.0]);
        assert_eq!(ticks(700.0, 790.0, 4), vec![700.0, 750.0, 800.0]);
        let small: Vec<String> = ticks(0.0, 1.0, 5).into_iter().map(num).collect();
        assert_eq!(small, vec!["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        assert!(ticks(f64::NAN, 1.0, 4).is_empty());
    }
}
