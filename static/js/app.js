// Small progressive enhancements. No inline scripts anywhere (CSP forbids them).
(function () {
  "use strict";

  // <button data-dialog-open="dialog-id"> opens a <dialog>; [data-dialog-close] closes its dialog.
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.dialogOpen);
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        dialog.showModal();
        const first = dialog.querySelector("textarea, input:not([type=hidden]), select");
        if (first) first.focus();
      }
      return;
    }
    const closer = event.target.closest("[data-dialog-close]");
    if (closer) {
      const dialog = closer.closest("dialog");
      if (dialog) { event.preventDefault(); dialog.close(); }
    }
  });

  // A "select all" checkbox: <input type=checkbox data-select-all="name-of-row-checkboxes">.
  document.addEventListener("change", function (event) {
    const all = event.target.closest("[data-select-all]");
    if (all) {
      document.querySelectorAll('input[type=checkbox][name="' + all.dataset.selectAll + '"]')
        .forEach(function (box) { box.checked = all.checked; });
    }
    const auto = event.target.closest("[data-autosubmit]");
    if (auto && auto.form && !auto.hasAttribute("hx-get")) { auto.form.requestSubmit(); }
    document.querySelectorAll("[data-count-of]").forEach(function (el) {
      el.textContent = document.querySelectorAll('input[type=checkbox][name="' + el.dataset.countOf + '"]:checked').length;
    });
  });

  // A server response can ask to open a dialog: HX-Trigger: {"open-dialog": "dialog-id"}.
  document.body && document.body.addEventListener("open-dialog", function (event) {
    const dialog = document.getElementById(event.detail.value || event.detail);
    if (dialog && !dialog.open) dialog.showModal();
  });
  document.addEventListener("htmx:load", function (event) {
    event.target.querySelectorAll && event.target.querySelectorAll("dialog[data-open-on-load]").forEach(function (d) {
      if (!d.open) d.showModal();
    });
  });
})();
