//! The HTML report's stylesheet and state colours, inlined into the one file.

/// Background and text colour per lifecycle state (and `unknown` for a node
/// the inventory does not know). Failed and quarantined stand out; the
/// bring-up steps go from grey through blue to green.
pub fn state_colors(state: &str) -> (&'static str, &'static str) {
    match state {
        "enrolled" => ("#E0E0E0", "#212121"),
        "inspected" => ("#BBDEFB", "#0D47A1"),
        "validated" => ("#90CAF9", "#0D47A1"),
        "burned_in" => ("#80CBC4", "#004D40"),
        "ready" => ("#A5D6A7", "#1B5E20"),
        "handed_off" => ("#2E7D32", "#FFFFFF"),
        "failed" => ("#C62828", "#FFFFFF"),
        "quarantined" => ("#EF6C00", "#FFFFFF"),
        _ => ("#FFFFFF", "#616161"),
    }
}

/// Every state in bring-up order, for the legend and the summary.
pub const STATES: [&str; 9] =
    ["failed", "quarantined", "enrolled", "inspected", "validated", "burned_in", "ready", "handed_off", "unknown"];

pub const CSS: &str = r#"
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#212121;margin:0;background:#F5F6F8}
header{background:#263238;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:22px}
header .meta{margin:2px 0 8px;color:#CFD8DC}
h2{font-size:18px;margin:0 0 10px}
h3{font-size:14px;margin:14px 0 6px;color:#37474F;text-transform:uppercase;letter-spacing:.04em}
section.card{background:#fff;border:1px solid #DDE1E6;border-radius:6px;margin:14px 24px;padding:14px 18px}
.top{display:flex;gap:0;align-items:flex-start}
.top>section.card{margin-right:0}
.top>section.card:first-child{flex:0 0 352px}
td a,td.nowrap{white-space:nowrap}
.top>section.card:last-child{flex:1;margin-right:24px}
.chip{display:inline-block;padding:2px 9px;border-radius:11px;margin:2px 4px 2px 0;font-weight:600;font-size:13px}
.badge{display:inline-block;padding:1px 8px;border-radius:4px;font-weight:600;font-size:12px;white-space:nowrap}
.alert{color:#FFCDD2;font-weight:600}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #ECEFF1;vertical-align:top}
th{font-size:12px;color:#546E7A;text-transform:uppercase;letter-spacing:.03em;background:#FAFBFC}
td.mono,span.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
tr.fail td{background:#FFEBEE}
tr.error td{background:#FFF3E0}
tr.skipped td{color:#757575}
.o-fail{color:#C62828;font-weight:700}
.o-error{color:#E65100;font-weight:700}
.o-skipped{color:#757575}
.action{color:#1A237E}
.rackframe{width:300px;border:8px solid #455A64;border-radius:4px;background:#37474F;padding:4px}
.unit{display:flex;align-items:center;height:34px;margin:3px 0;border-radius:3px;padding:0 8px;text-decoration:none;border:1px solid rgba(0,0,0,.25)}
.unit .pos{width:58px;font:12px ui-monospace,"DejaVu Sans Mono",monospace;opacity:.85}
.unit .name{flex:1;font-weight:700}
.unit .st{font-size:11px;font-weight:600;opacity:.9}
.unit.unknown{border:1px dashed #90A4AE}
.legend{margin-top:8px;font-size:12px}
.legend span{display:inline-block;margin:2px 6px 2px 0}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:3px;border:1px solid rgba(0,0,0,.3)}
.muted{color:#78909C}
.node h2 small{font-weight:400;color:#607D8B;font-size:13px;margin-left:8px}
.reason{margin:4px 0 8px;font-weight:600}
code.locate,.locate code{font:12px ui-monospace,monospace;background:#ECEFF1;padding:1px 4px;border-radius:3px;user-select:all}
.grid2{display:grid;grid-template-columns:3fr 2fr;gap:18px}
.charts{display:flex;flex-wrap:wrap;gap:10px}
svg.chart{background:#fff;border:1px solid #ECEFF1;border-radius:4px}
svg .ct{font:600 13px system-ui,sans-serif;fill:#37474F}
svg .tick{font:11px system-ui,sans-serif;fill:#546E7A}
svg .tick.fail{fill:#C62828;font-weight:700}
svg .cv{font:11px system-ui,sans-serif;fill:#1A237E}
svg .cv.light{fill:#fff}
svg .muted{font:13px system-ui,sans-serif;fill:#90A4AE}
svg .grid{stroke:#ECEFF1}
svg .axis{stroke:#90A4AE}
svg .threshold{stroke:#C62828;stroke-dasharray:4 3;stroke-width:1.4}
ul.changes{margin:0;padding-left:18px}
ul.changes li.swap{color:#6A1B9A;font-weight:600}
details{margin-top:10px}
summary{cursor:pointer;font-weight:600;color:#37474F}
footer{margin:10px 24px 24px;color:#78909C;font-size:12px}
"#;
