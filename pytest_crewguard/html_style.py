"""The HTML report's stylesheet, inlined in the page so that nothing is fetched to show it."""

CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#1d1d1f;background:#fff}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.1em;margin:0;word-break:break-all}
h3{font-size:1em;margin:1em 0 .4em;color:#444}
table{border-collapse:collapse;margin:.5em 0}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f5}
.wide{overflow-x:auto}.wide td:first-child{max-width:30em;overflow-wrap:anywhere}
tr.total td{font-weight:600;border-top:2px solid #999}
.meta{color:#555;margin:.2em 0}.bad{color:#b00020;font-weight:600}.ok{color:#137333}
.changed{background:#fff6d6}.chg{color:#8a5a00}
section.test{border:1px solid #ddd;border-radius:6px;padding:.8em 1em;margin:1.2em 0}
section.failed{border-color:#d33;box-shadow:inset 4px 0 #d33}
.row{display:grid;grid-template-columns:minmax(16em,38%) 1fr;gap:.6em;align-items:center;min-height:1.5em}
.label{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-size:.92em}
.track{position:relative;height:1.1em;background:#f6f6f8;border-radius:3px}
.bar,.span,.tick{position:absolute;top:0;height:100%;border-radius:3px}
.bar{background:#4a7bd0;min-width:3px}.span{background:#d9e3f5;top:25%;height:50%}
.tick{width:3px;background:#7a4ad0}.tool.err .tick{background:#d33}
.task .label{font-weight:600}.tool .label{color:#5a3a9a}.tool.err .label{color:#b00020}
details.call>summary{list-style:none;cursor:pointer}details.call>summary::-webkit-details-marker{display:none}
details.call>summary .label::before{content:"▸ ";color:#888}
details.call[open]>summary .label::before{content:"▾ "}
details.forced .bar{background:#d33}details.forced .label{color:#b00020}
.msgs{margin:.3em 0 .6em 1.2em;border-left:3px solid #ddd;padding-left:.6em}
.msg{margin:.35em 0}.msg b{font-size:.85em;text-transform:uppercase;color:#666}
.msg pre{white-space:pre-wrap;word-break:break-word;margin:.1em 0;background:#f8f8fa;padding:.4em;
  border-radius:4px;font-size:.85em}
.msg.assistant pre,.msg.reply pre{background:#eef6ee}
.axis{display:flex;justify-content:space-between;font-size:.8em;color:#777}
.small{font-size:.88em}
"""
