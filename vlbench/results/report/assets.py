"""The report's stylesheet and its one small script (table sorting, the scatter's axis pickers)."""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1400px; padding: 0 1rem; color: #1f2328; }
h1, h2, h3 { font-weight: 600; } h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
nav { margin-bottom: 1rem; font-size: .9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .85rem; margin: .5rem 0; }
th, td { border: 1px solid #d0d7de; padding: .25rem .5rem; text-align: right; white-space: nowrap; vertical-align: top; }
th { background: #f6f8fa; position: sticky; top: 0; }
td.model, td.name, th:first-child { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th.asc::after { content: " \\25B2"; } table.sortable th.desc::after { content: " \\25BC"; }
th.suite, td.suite { background: #eef6ff; }
td.non-default { background: #fff8c5; }
.ci { color: #656d76; font-size: .75rem; }
.plot { width: 100%; min-height: 380px; }
details { margin: .4rem 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f6f8fa; padding: .5rem; overflow-x: auto; font-size: .75rem; }
.muted { color: #656d76; font-size: .85rem; }
label { margin-right: 1rem; }
"""

TABLE_SCRIPT = """
(function () {
  function key(cell, numeric) {
    if (!numeric) return cell.textContent.trim().toLowerCase();
    var v = cell.getAttribute('data-value');
    return v === null || v === '' ? null : parseFloat(v);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, index) {
      th.addEventListener('click', function () {
        var numeric = th.getAttribute('data-sort') === 'number';
        var ascending = th.classList.contains('desc') || (!th.classList.contains('asc') && !numeric);
        table.querySelectorAll('thead th').forEach(function (o) { o.classList.remove('asc', 'desc'); });
        th.classList.add(ascending ? 'asc' : 'desc');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[index], numeric), y = key(b.cells[index], numeric);
          if (x === y) return 0;
          if (x === null) return 1;
          if (y === null) return -1;
          return (x < y ? -1 : 1) * (ascending ? 1 : -1);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

SCATTER_SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('scatter-data').textContent);
  var xs = document.getElementById('scatter-x'), ys = document.getElementById('scatter-y');
  function draw() {
    var x = data.columns[xs.value], y = data.columns[ys.value], px = [], py = [], names = [];
    data.models.forEach(function (m, i) {
      if (x[i] !== null && y[i] !== null) { px.push(x[i]); py.push(y[i]); names.push(m); }
    });
    Plotly.react('scatter', [{type: 'scatter', mode: 'markers+text', x: px, y: py, text: names,
      textposition: 'top center', marker: {size: 10}, hovertemplate: '%{text}<br>%{x:.1f} / %{y:.1f}<extra></extra>'}],
      {xaxis: {title: {text: xs.value + ' (%)'}}, yaxis: {title: {text: ys.value + ' (%)'}},
       margin: {t: 30}, height: 480}, {responsive: true, displaylogo: false});
  }
  xs.addEventListener('change', draw); ys.addEventListener('change', draw);
  draw();
})();
"""
