"""One self-contained HTML page: a template, escaped text, tables and plotly charts.

The page embeds plotly.js once, from the ``plotly`` package's own ``plotly.min.js``, so it
opens offline and loads nothing from anywhere: no script, link or image has a ``src`` or
``href`` outside the file. plotly.js travels gzip-compressed and base64-encoded in a data
block (:func:`plotly_js_packed`: 1.96 MB instead of 4.82 MB); the page unpacks it with the
browser's own ``DecompressionStream('gzip')`` (Chromium 80, Firefox 113, Safari 16.4 and
later), runs it as an inline script (no ``eval``, no ``blob:`` URL, nothing a page of inline
scripts does not already need) and only then draws the charts, which wait on the promise
``qmtlPlotly``. Where the browser cannot unpack it, a note says so and the tables, plain
HTML, still read. Every text that comes from a run (names, parameters, symbols) is
HTML-escaped, and figures' JSON inside ``<script>`` has its ``</`` escaped.

>>> html = page("A <b>", ["<p>x</p>"], [])
>>> "<title>A &lt;b&gt;</title>" in html, plotly_js_packed() in html
(True, True)
"""

from __future__ import annotations

import base64
import gzip
import html as _html
import json
from collections.abc import Sequence
from functools import cache
from string import Template

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["sendDataToCloud"]}
"""plotly's options for every chart (no link to plotly's cloud)."""

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;
background:#f6f7f9}
header{background:#fff;border-bottom:1px solid #ddd;padding:16px 28px}
header h1{margin:0 0 4px;font-size:22px} header p{margin:2px 0;color:#555;font-size:13px}
main{padding:16px 28px;max-width:1500px;margin:auto}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:0 0 16px;
padding:10px 14px}
section h2{font-size:16px;margin:4px 0 8px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
.grid section{margin:0}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#8a5a00;background:#fff8e5;border:1px solid #f0d890;padding:6px 10px;
border-radius:4px;font-size:13px}
.scroll{max-height:420px;overflow:auto}
details summary{cursor:pointer;font-size:13px;color:#444}
p.banner{margin:0;border-radius:0;border-width:0 0 1px}
.reading{font-size:14px;line-height:1.5;margin:6px 0 10px;max-width:1100px}
.verdict{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;
font-size:13px;margin-right:8px}
.verdict.good{background:#e3f4e8;color:#1b6e34}.verdict.warn{background:#fff3d6;color:#8a5a00}
.verdict.bad{background:#fde4e1;color:#a12a1b}
"""

PAGE = Template("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="qmtl">
<link rel="icon" href="data:,">
<title>$title</title>
<style>$css</style>
</head>
<body>
<noscript><p class="note banner">The charts need JavaScript; the tables below are complete
without it.</p></noscript>
<p class="note banner" id="qmtl-note" hidden>The charts cannot be drawn: this browser has no
DecompressionStream (it needs Chrome or Edge 80, Firefox 113, Safari 16.4 or later). The
tables below are complete.</p>
<script>if(typeof DecompressionStream!=="function")document.getElementById("qmtl-note")
.hidden=false;</script>
$body
<script type="application/gzip" data-encoding="base64" id="qmtl-plotly">$plotlyjs</script>
<script>
const qmtlConfig=$config;
$loader
$expand
$figures
</script>
</body>
</html>
""")


def escape(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes too).

    >>> escape('<a href="x">')
    '&lt;a href=&quot;x&quot;&gt;'
    """
    return _html.escape(str(value), quote=True)


@cache
def plotly_js() -> str:
    """The plotly.js bundled with the ``plotly`` package (read once).

    >>> len(plotly_js()) > 1_000_000
    True
    """
    return get_plotlyjs()


@cache
def plotly_js_packed() -> str:
    """:func:`plotly_js` as a page embeds it: gzip-compressed (level 9, no timestamp, so the
    same text on every run) and base64-encoded; computed once per process (about 0.2 s).

    >>> gzip.decompress(base64.b64decode(plotly_js_packed())) == plotly_js().encode()
    True
    """
    packed = gzip.compress(plotly_js().encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode("ascii")


LOADER = """const qmtlPlotly=(async function(){
if(typeof DecompressionStream!=="function")throw new Error("no DecompressionStream");
const d=document.getElementById("qmtl-plotly"),b=atob(d.textContent),u=new Uint8Array(b.length);
for(let i=0;i<b.length;i++)u[i]=b.charCodeAt(i);
d.remove();
const z=new Blob([u]).stream().pipeThrough(new DecompressionStream("gzip"));
const s=document.createElement("script");s.textContent=await new Response(z).text();
document.head.appendChild(s);
if(typeof Plotly==="undefined")throw new Error("plotly.js did not load");
return Plotly;})();
qmtlPlotly.catch(function(e){const n=document.getElementById("qmtl-note");
if(e.message!=="no DecompressionStream")n.textContent="The charts cannot be drawn ("+e.message
+"); the tables below are complete.";n.hidden=false;});
function qmtlDraw(i,f){qmtlPlotly.then(function(P){f=qmtlX(f);
P.newPlot("chart-"+i,f.data,f.layout,qmtlConfig);},function(){});}"""
"""The page's JavaScript that unpacks :func:`plotly_js_packed`, runs it and resolves the
promise ``qmtlPlotly`` to ``Plotly`` (or, where it cannot, shows the note ``#qmtl-note``);
``qmtlDraw(i, figure)`` draws a figure into :func:`chart_div` ``i`` once it has."""


def script_json(value: object) -> str:
    """JSON that is safe inside ``<script>`` (no ``</`` can close it).

    >>> script_json({"a": "</script>"})
    '{"a": "<\\\\/script>"}'
    """
    return json.dumps(value).replace("</", "<\\/")


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    numeric: Sequence[bool] | None = None,
    row_attrs: Sequence[dict[str, str]] | None = None,
    cls: str = "",
) -> str:
    """An HTML table, every cell escaped; ``numeric`` right-aligns columns; ``row_attrs``
    gives each row ``data-*`` attributes.

    >>> table(["a"], [["<x>"]], row_attrs=[{"k": "v"}])[-61:]
    '<tbody><tr data-k="v"><td>&lt;x&gt;</td></tr></tbody></table>'
    """
    numeric = numeric or [False] * len(headers)
    num = [' class="num"' if n else "" for n in numeric]
    head = "".join(f"<th{c}>{escape(h)}</th>" for h, c in zip(headers, num, strict=True))
    body = []
    for i, row in enumerate(rows):
        attrs = "".join(f' data-{escape(k)}="{escape(v)}"'
                        for k, v in (row_attrs[i] if row_attrs else {}).items())
        cells = "".join(f"<td{c}>{escape(v)}</td>" for v, c in zip(row, num, strict=True))
        body.append(f"<tr{attrs}>{cells}</tr>")
    klass = f' class="{escape(cls)}"' if cls else ""
    return (f"<table{klass}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def section(title: str, content: str, note: str = "") -> str:
    """A titled block of the page (``content`` is HTML already; ``note`` is text; no
    heading when ``title`` is empty).

    >>> section("T & U", "<p>x</p>", note="careful")
    '<section><h2>T &amp; U</h2><p class="note">careful</p><p>x</p></section>'
    """
    warn = f'<p class="note">{escape(note)}</p>' if note else ""
    head = f"<h2>{escape(title)}</h2>" if title else ""
    return f"<section>{head}{warn}{content}</section>"


def chart_div(index: int) -> str:
    """The placeholder of the ``index``-th chart.

    >>> chart_div(2)
    '<div class="chart" id="chart-2"></div>'
    """
    return f'<div class="chart" id="chart-{index}"></div>'


def compact_x(fig: go.Figure) -> go.Figure:
    """A copy of ``fig`` whose date traces carry their times as int32 steps from the first
    (``meta.x0`` ms, ``meta.dx`` ms a step) instead of float64 milliseconds: 4 bytes a point
    instead of 8. :data:`EXPAND_X` turns them back into milliseconds in the browser before
    plotting; traces it cannot shrink stay as they are.

    >>> fig = go.Figure(go.Scatter(x=np.array([1e12, 1e12 + 6e4, 1e12 + 1.8e5]), y=[1, 2, 3]))
    >>> t = compact_x(fig).data[0]
    >>> t.x.tolist(), t.meta
    ([0, 1, 3], {'x0': 1000000000000.0, 'dx': 60000.0})
    """
    out = go.Figure(fig)
    for trace in out.data:
        x = getattr(trace, "x", None)
        if not isinstance(x, np.ndarray) or x.dtype != np.float64 or len(x) < 2:
            continue
        offsets = x - x[0]
        steps = offsets.astype(np.int64)
        if not (steps == offsets).all():
            continue  # not whole milliseconds
        dx = int(np.gcd.reduce(steps)) or 1
        steps //= dx
        if steps.max() >= 2**31:
            continue
        trace.x = steps.astype(np.int32)
        trace.meta = {"x0": float(x[0]), "dx": float(dx)}
    return out


EXPAND_X = """function qmtlX(f){for(const t of f.data){if(!t.meta||t.meta.x0===undefined)continue;
let s=t.x;if(s&&s.bdata!==undefined){const b=atob(s.bdata),u=new Uint8Array(b.length);
for(let i=0;i<b.length;i++)u[i]=b.charCodeAt(i);s=new Int32Array(u.buffer);}
const x=new Float64Array(s.length);for(let i=0;i<s.length;i++)x[i]=t.meta.x0+s[i]*t.meta.dx;
t.x=x;delete t.meta;}return f;}"""
"""The page's JavaScript that undoes :func:`compact_x` before a chart is drawn."""


def figure_script(index: int, fig: go.Figure) -> str:
    """The JavaScript that draws ``fig`` into :func:`chart_div` ``index``.

    >>> figure_script(0, go.Figure()).startswith("qmtlDraw(0,{")
    True
    """
    # plotly's own encoding (typed arrays as base64 bdata), made safe inside <script>
    spec = compact_x(fig).to_json().replace("</", "<\\/")
    return f"qmtlDraw({index},{spec});"


def page(title: str, sections: Sequence[str], figures: Sequence[go.Figure],
         header: str = "") -> str:
    """The whole page: ``header`` and ``sections`` (HTML, in order; a chart's place is its
    :func:`chart_div`), then the scripts that draw ``figures`` into those places.

    >>> "chart-0" in page("t", [chart_div(0)], [go.Figure()])
    True
    """
    body = f"{header}<main>{''.join(sections)}</main>"
    scripts = "\n".join(figure_script(i, f) for i, f in enumerate(figures))
    return PAGE.substitute(title=escape(title), css=CSS, plotlyjs=plotly_js_packed(),
                           body=body, config=script_json(CONFIG), loader=LOADER,
                           expand=EXPAND_X, figures=scripts)
