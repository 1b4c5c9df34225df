// Small progressive enhancements. No inline scripts anywhere (CSP forbids them).
(function () {
  "use strict";

  const FOCUSABLE = 'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), ' +
    'select:not([disabled]), textarea:not([disabled]), summary, [tabindex]:not([tabindex="-1"])';

  // Open a modal dialog and put focus on its first field (else leave the browser's choice, the
  // first focusable control). The browser returns focus to the opener when the dialog closes.
  function openDialog(dialog) {
    if (!dialog || dialog.open || typeof dialog.showModal !== "function") return;
    dialog.showModal();
    // Parts of a dialog that load when it opens listen for this (hx-trigger="dialog-opened
    // from:closest dialog"), e.g. what deactivating the ticked members would run.
    dialog.dispatchEvent(new CustomEvent("dialog-opened"));
    const first = dialog.querySelector("[autofocus], textarea, input:not([type=hidden]), select");
    if (first) first.focus();
  }

  // Keep Tab and Shift+Tab inside an open modal dialog rather than letting them leave the page.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Tab") return;
    const dialog = document.querySelector("dialog[open]:modal");
    if (!dialog) return;
    const items = Array.prototype.filter.call(dialog.querySelectorAll(FOCUSABLE), function (el) {
      return el.getClientRects().length > 0;
    });
    if (!items.length) return;
    const first = items[0];
    const last = items[items.length - 1];
    if (event.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
      event.preventDefault(); last.focus();
    } else if (!event.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
      event.preventDefault(); first.focus();
    }
  });

  // <button data-dialog-open="dialog-id"> opens a <dialog>; [data-dialog-close] closes its dialog.
  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-dialog-open]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.dialogOpen);
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        openDialog(dialog);
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
    syncSelection();
  });

  // "<strong data-count-of=ids>" shows how many boxes are ticked; a [data-needs-selection=ids]
  // button is disabled while none is (without JavaScript it stays enabled and the server asks).
  function checkedCount(name) {
    return document.querySelectorAll('input[type=checkbox][name="' + name + '"]:checked').length;
  }
  function syncSelection() {
    document.querySelectorAll("[data-count-of]").forEach(function (el) {
      el.textContent = checkedCount(el.dataset.countOf);
    });
    document.querySelectorAll("[data-needs-selection]").forEach(function (button) {
      button.disabled = checkedCount(button.dataset.needsSelection) === 0;
    });
  }
  document.addEventListener("htmx:load", syncSelection);
  document.addEventListener("DOMContentLoaded", syncSelection);

  // Flash messages float in a corner (app.css): each gets a button to dismiss it.
  function addCloseButtons(root) {
    (root.querySelectorAll ? root : document).querySelectorAll(".messages .alert").forEach(function (alert) {
      if (alert.querySelector(".toast-close")) return;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "toast-close";
      button.setAttribute("aria-label", "Dismiss this message");
      button.textContent = "×";
      button.addEventListener("click", function () { alert.remove(); });
      alert.appendChild(button);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { addCloseButtons(document); });
  document.addEventListener("htmx:load", function () { addCloseButtons(document); });

  // A server response can ask to open a dialog: HX-Trigger: {"open-dialog": "dialog-id"}.
  document.body && document.body.addEventListener("open-dialog", function (event) {
    openDialog(document.getElementById(event.detail.value || event.detail));
  });
  document.addEventListener("htmx:load", function (event) {
    event.target.querySelectorAll && event.target.querySelectorAll("dialog[data-open-on-load]").forEach(openDialog);
  });
})();
