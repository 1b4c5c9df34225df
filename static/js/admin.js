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

  window.addEventListener("load", run);
  document.addEventListener("formset:added", function () { window.setTimeout(run, 0); });
  // select2 rebuilds its selection box when a value is chosen.
  document.addEventListener("change", function () { window.setTimeout(function () { nameAutocompletes(document); }, 0); });
})();
