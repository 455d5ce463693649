// Hashar console: the little the pages need beyond HTML. Loaded with `defer`; no inline
// script anywhere (the Content-Security-Policy allows scripts from this origin only).
"use strict";

// A form is sent once: its submit button is disabled after the first tap, so a double tap
// on a slow connection sends one request (the server's form keys catch what gets through).
document.addEventListener("submit", function (event) {
  var form = event.target;
  // A form htmx sends (it prevents the default) uses `hx-disabled-elt` instead.
  if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  var buttons = form.querySelectorAll("button[type=submit], button:not([type]), input[type=submit]");
  // After the browser has read the form (a disabled submitter would drop its value).
  window.setTimeout(function () {
    buttons.forEach(function (b) {
      b.disabled = true;
      b.setAttribute("aria-busy", "true");
    });
  }, 0);
});

// Back to a page from the back/forward cache: its forms can be sent again.
window.addEventListener("pageshow", function (event) {
  if (!event.persisted) return;
  document.querySelectorAll("form[data-sent]").forEach(function (form) {
    delete form.dataset.sent;
    form.querySelectorAll("[aria-busy]").forEach(function (b) {
      b.disabled = false;
      b.removeAttribute("aria-busy");
    });
  });
});

// A signed-in page is never shown again from the back/forward cache (Back after signing
// out must not show data): hidden as it is left, and asked of the server again when Back
// brings it back, which answers with the page or the sign-in page.
window.addEventListener("pagehide", function () {
  if (document.body && document.body.hasAttribute("data-signed-in")) document.body.hidden = true;
});
window.addEventListener("pageshow", function (event) {
  if (event.persisted && document.body.hasAttribute("data-signed-in")) window.location.reload();
});
