/* tinytrack widgets, v1: hit counter (?hits, ?hits=unique), kudos buttons (?kudos, ?kudos=<emoji>,
 * ?kudos=custom) and visited countries (?countries). Loaded by the core embed script only when one
 * of those parameters is on its URL; configured by that URL (passed as data-embed).
 * Markup as Tinylytics': .tinylytics_hits / .tinylytics_kudos / .tinylytics_countries with an
 * optional data-path; the .tinytrack_* class names work too. */
(function () {
  var d = document, l = location, me = d.currentScript;
  var m = me && /^(.*)\/embed\/([^\/?#]+?)(\/min)?\.js(\?[^#]*)?/.exec(me.getAttribute("data-embed") || "");
  if (!m) return;
  var base = m[1], uid = m[2], q = new URLSearchParams(m[4] || ""), KEY = "tinytrack_kudos";

  function find(name) {
    return [].slice.call(d.querySelectorAll(".tinylytics_" + name + ",.tinytrack_" + name));
  }
  function pathOf(el) { return el.getAttribute("data-path") || l.pathname; }
  function paths(els) {
    var query = new URLSearchParams(), seen = {};
    els.forEach(function (el) {
      var p = pathOf(el);
      if (!seen[p]) { seen[p] = 1; query.append("path", p); }
    });
    return query;
  }
  function getJSON(what, query, done) {
    fetch(base + "/widgets/" + uid + "/" + what + "?" + query, { credentials: "omit" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (json) { if (json) done(json); })["catch"](function () {});
  }
  function remembered() {
    try { return JSON.parse(localStorage.getItem(KEY) || "{}") || {}; } catch (e) { return {}; }
  }

  function hits() {
    var els = find("hits");
    if (!els.length) return;
    var withPath = els.filter(function (el) { return el.hasAttribute("data-path"); });
    var query = paths(withPath);
    if (q.get("hits") === "unique") query.set("unique", "true");
    getJSON("hits", query, function (json) {
      els.forEach(function (el) {
        var n = el.hasAttribute("data-path") ? json.paths[pathOf(el)] : json.hits;
        el.textContent = String(n || 0);
      });
    });
  }

  function kudos() {
    var els = find("kudos");
    if (!els.length) return;
    var emoji = q.get("kudos") || "\uD83D\uDC4B", given = remembered(), counts = {};
    function show(path) {
      els.forEach(function (el) {
        if (pathOf(el) !== path) return;
        var n = String(counts[path] || 0);
        el.textContent = emoji === "custom" ? n : emoji + " " + n;
        if (given[path]) {
          el.classList.add("did_select");
          el.disabled = true;
        }
      });
    }
    els.forEach(function (el) {
      if (given[pathOf(el)]) { el.classList.add("did_select"); el.disabled = true; }
      el.addEventListener("click", function (e) {
        var path = pathOf(el);
        e.preventDefault();
        if (given[path] || el.getAttribute("aria-busy")) return;
        el.setAttribute("aria-busy", "true");
        el.disabled = true;
        fetch(base + "/collector/" + uid + "/kudos", { method: "POST", credentials: "omit",
          headers: { "Content-Type": "text/plain" },
          body: JSON.stringify({ path: path, url: l.href }) })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (json) {
            el.removeAttribute("aria-busy");
            if (!json || !json.uid) { el.disabled = false; return; }
            given = remembered();
            given[path] = json.uid;
            try { localStorage.setItem(KEY, JSON.stringify(given)); } catch (err) { /* full */ }
            counts[path] = json.count;
            show(path);
          })["catch"](function () { el.removeAttribute("aria-busy"); el.disabled = false; });
      });
    });
    getJSON("kudos", paths(els), function (json) {
      for (var p in json.kudos) { counts[p] = json.kudos[p]; show(p); }
    });
  }

  function flag(code) {
    return String.fromCodePoint(0x1f1e6 + code.charCodeAt(0) - 65, 0x1f1e6 + code.charCodeAt(1) - 65);
  }
  function countries() {
    var els = find("countries");
    if (!els.length) return;
    getJSON("countries", "", function (json) {
      els.forEach(function (el) {
        el.textContent = "";
        json.countries.forEach(function (code, i) {
          var span = d.createElement("span");
          span.title = code;
          span.setAttribute("data-country", code);
          span.textContent = flag(code);
          if (i) el.appendChild(d.createTextNode(" "));
          el.appendChild(span);
        });
      });
    });
  }

  function run() {
    if (q.has("hits")) hits();
    if (q.has("kudos")) kudos();
    if (q.has("countries")) countries();
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", run); else run();
})();
