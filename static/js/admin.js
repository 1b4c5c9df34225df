// Accessible names the Django admin's own widgets leave out (axe-core "serious" findings): the
// date and time boxes of a split date-time field, the select2 autocomplete boxes, and the
// filter_horizontal help icons. Run once the admin's scripts have built those widgets.
(function () {
  "use strict";

  function rowLabel(element) {
    const row = element.closest(".form-row, .fieldBox, td, .flex-container");
    const label = row && row.querySelector("label");
    return label ? label.textContent.replace(/[:*]\s*$/, "").trim() : "";
  }

  function nameSplitDateTimes(root) {
    root.querySelectorAll("p.datetime").forEach(function (p) {
      const label = rowLabel(p);
      p.querySelectorAll("input").forEach(function (input, index) {
        if (!input.hasAttribute("aria-label")) {
          input.setAttribute("aria-label", (label ? label + ": " : "") + (index === 0 ? "date" : "time"));
        }
      });
    });
  }

  function nameAutocompletes(root) {
    root.querySelectorAll(".select2-container").forEach(function (container) {
      const select = container.previousElementSibling;
      if (!select || select.tagName !== "SELECT" || !select.id) return;
      const label = document.querySelector('label[for="' + select.id + '"]');
      const name = label ? label.textContent.replace(/[:*]\s*$/, "").trim() : select.name;
      container.querySelectorAll(".select2-selection, .select2-selection__rendered").forEach(function (el) {
        el.setAttribute("aria-label", name);
        el.removeAttribute("aria-labelledby");
      });
    });
  }

  function nameHelpIcons(root) {
    root.querySelectorAll("span.help-tooltip[aria-label]:not([role])").forEach(function (span) {
      span.setAttribute("role", "img");
    });
  }

  function run() {
    nameSplitDateTimes(document);
    nameAutocompletes(document);
    nameHelpIcons(document);
  }

  // The widgets are built by jQuery ready handlers, inline formsets and select2 (which rebuilds
  // its box when a value is chosen), at times of their own: name whatever appears.
  let queued = false;
  function soon() {
    if (queued) return;
    queued = true;
    window.setTimeout(function () { queued = false; run(); }, 0);
  }
  document.addEventListener("DOMContentLoaded", function () {
    run();
    new MutationObserver(soon).observe(document.body, { childList: true, subtree: true });
  });
  window.addEventListener("load", run);
})();
