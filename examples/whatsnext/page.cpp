// The page at "/": a thin client of /api/whats-next/data (refreshes every 30 s). Built with
// DOM calls and textContent only, so calendar text is never interpreted as HTML.
#include "server.hpp"

namespace whatsnext {

const char* const kIndexHtml = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>What's Next</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
  h1 { margin-bottom: 0.2rem; }
  .meta { color: #666; font-size: 0.9rem; }
  li { margin: 0.4rem 0; }
  .when { font-weight: 600; margin-right: 0.5rem; }
  .now { color: #b00; }
  .where { color: #666; }
  table { border-collapse: collapse; }
  td { padding: 0.1rem 0.8rem 0.1rem 0; }
</style>
</head>
<body>
<h1 id="title">What's Next</h1>
<div class="meta" id="meta">loading...</div>
<h2>Next</h2><ol id="next"></ol>
<h2>Today</h2><ul id="today"></ul>
<h2>Coming days</h2><table id="days"></table>
<script>
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function item(ev, timing) {
  const li = el('li');
  const when = timing ? ev.starts_in : ev.start.substring(11, 16) + '-' + ev.end.substring(11, 16);
  li.appendChild(el('span', 'when' + (ev.in_progress ? ' now' : ''), when));
  li.appendChild(el('span', '', ev.summary));
  if (ev.location) li.appendChild(el('span', 'where', ' @ ' + ev.location));
  return li;
}
async function load() {
  try {
    const res = await fetch('/api/whats-next/data?layout=full');
    const cache = res.headers.get('X-Pipecache');
    const worker = res.headers.get('X-Worker-Pid');
    const v = await res.json();
    document.getElementById('title').textContent = v.title;
    document.getElementById('meta').textContent =
      'as of ' + v.now + ' UTC - worker ' + worker + ' - cache: ' + cache;
    const next = document.getElementById('next');
    next.replaceChildren(...v.next.map(e => item(e, true)));
    const today = document.getElementById('today');
    today.replaceChildren(...(v.today || []).map(e => item(e, false)));
    const days = document.getElementById('days');
    days.replaceChildren(...(v.days || []).map(d => {
      const tr = el('tr');
      tr.appendChild(el('td', '', d.date));
      tr.appendChild(el('td', '', d.events + ' events'));
      tr.appendChild(el('td', '', Math.round(d.busy_minutes / 6) / 10 + ' h booked'));
      return tr;
    }));
  } catch (e) {
    document.getElementById('meta').textContent = 'error: ' + e;
  }
}
load();
setInterval(load, 30000);
</script>
</body>
</html>
)html";

}  // namespace whatsnext
