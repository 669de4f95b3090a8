/* tinytrack dashboard: progressive enhancement only (every figure is in the HTML already).
 * Country names from the browser's own Intl data; the slow journeys panel loaded after the page. */
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }
  ready(function () {
    var names = null;
    try { names = new Intl.DisplayNames([navigator.language || "en"], { type: "region" }); } catch (e) { names = null; }
    document.querySelectorAll("a.country[data-code]").forEach(function (el) {
      var code = el.getAttribute("data-code");
      if (names && /^[A-Z]{2}$/.test(code) && code !== "XX") {
        try { el.textContent = names.of(code) + " (" + code + ")"; } catch (e) { /* unknown code */ }
      }
    });
    document.querySelectorAll("[data-load]").forEach(function (box) {
      fetch(box.getAttribute("data-load"), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          box.replaceChildren.apply(box, Array.prototype.slice.call(doc.body.childNodes));
        })
        ["catch"](function () { box.textContent = "Could not load this panel."; });
    });
  });
})();
