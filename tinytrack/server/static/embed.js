/* tinytrack embed script (core): page views, SPA navigation, click events, "ignore my visits".
 * One dependency-free IIFE configured by its own URL, as Tinylytics' is:
 *   <script src="https://stats.example/embed/SITE_UID.js?spa&events" defer></script>
 * No cookies; localStorage holds only the opt-out flag (and, in the widgets, given kudos).
 * Widgets (?hits, ?kudos, ?countries) live in a second file loaded only when asked for. */
(function () {
  var d = document, w = window, l = location, h = history, me = d.currentScript;
  var m = me && /^(.*)\/embed\/([^\/?#]+?)(\/min)?\.js(\?[^#]*)?/.exec(me.src);
  if (!m) return;
  var base = m[1], collector = base + "/collector/" + m[2];
  var q = new URLSearchParams(m[4] || ""), KEY = "tinytrack_ignore", store;
  try { store = w.localStorage; } catch (e) { store = null; }

  // ?tiny_ignore=true|false (or ?ti=...) on the page's own URL sets or clears the opt-out flag.
  var page = new URLSearchParams(l.search), flag = page.get("tiny_ignore") || page.get("ti");
  if (store && (flag === "true" || flag === "false")) {
    try {
      if (flag === "true") store.setItem(KEY, "1"); else store.removeItem(KEY);
      alert(flag === "true"
        ? "tinytrack: your visits to this site are no longer counted in this browser."
        : "tinytrack: your visits to this site are counted again in this browser.");
    } catch (e) { /* storage full or blocked: nothing to confirm */ }
  }
  var off = q.has("ignore");
  try { off = off || (store && store.getItem(KEY) === "1"); } catch (e) { /* blocked */ }

  // text/plain keeps the POST a "simple" CORS request: no preflight round trip.
  function send(kind, body, beacon) {
    var url = collector + kind, data = JSON.stringify(body);
    if (beacon && navigator.sendBeacon && navigator.sendBeacon(url, data)) return;
    fetch(url, { method: "POST", body: data, keepalive: true, credentials: "omit",
      headers: { "Content-Type": "text/plain" } })["catch"](function () {});
  }

  var last = null, prev = l.href;
  function view(referrer) {
    if (off || l.pathname === last) return; // same path again (hash change, query tweak): not a new view
    last = l.pathname;
    send("", { path: last, url: l.href, referrer: referrer || null });
  }
  view(d.referrer);

  if (q.has("spa")) {
    var moved = function () {
      var from = prev;
      prev = l.href;
      view(from);
    };
    ["pushState", "replaceState"].forEach(function (name) {
      var original = h[name];
      h[name] = function () {
        var result = original.apply(this, arguments);
        moved();
        return result;
      };
    });
    w.addEventListener("popstate", moved);
  }

  if (q.has("events") && !off) {
    var clicked = new WeakMap();
    d.addEventListener("click", function (e) {
      var el = e.target && e.target.closest &&
        e.target.closest("[data-tinylytics-event],[data-tinytrack-event]");
      if (!el) return;
      var now = Date.now(), before = clicked.get(el);
      if (before && now - before < 500) return; // debounce double clicks per element
      clicked.set(el, now);
      var attr = function (name) {
        return el.getAttribute("data-tinytrack-" + name) || el.getAttribute("data-tinylytics-" + name);
      };
      send("/events", { event: attr("event").replace(/->/g, "."), value: attr("event-value"),
        path: l.pathname, url: l.href }, q.has("beacon"));
    }, true);
  }

  if (q.has("hits") || q.has("kudos") || q.has("countries")) {
    var s = d.createElement("script");
    s.src = base + "/widgets/v1" + (m[3] ? ".min" : "") + ".js";
    s.setAttribute("data-embed", me.src);
    d.head.appendChild(s);
  }
})();
