// Automation builder enhancements. The server renders everything (htmx swaps condition rows and
// the summary); this only adds header rows from a server-rendered <template>, copies secrets to
// the clipboard, and moves focus. Without it the pages still work (one blank header row; the
// secret can be selected by hand).
(function () {
  "use strict";

  function reveal(root) {
    root.querySelectorAll("[data-add-row].hidden, [data-copy].hidden").forEach(function (el) {
      if (el.dataset.copy === undefined || navigator.clipboard) el.classList.remove("hidden");
    });
  }

  // Number a formset's empty form (__prefix__) and append it; TOTAL_FORMS moves on by one.
  function addRow(button) {
    const total = document.getElementById(button.dataset.total);
    const template = document.getElementById(button.dataset.template);
    const rows = document.getElementById(button.dataset.addRow);
    if (!total || !template || !rows) return;
    const index = parseInt(total.value, 10) || 0;
    if (button.dataset.max && index >= parseInt(button.dataset.max, 10)) return;
    const row = template.content.firstElementChild.cloneNode(true);
    row.querySelectorAll("[name], [id], [for]").forEach(function (el) {
      ["name", "id", "for"].forEach(function (attr) {
        const value = el.getAttribute(attr);
        if (value) el.setAttribute(attr, value.replace(/__prefix__/g, String(index)));
      });
    });
    rows.appendChild(row);
    total.value = String(index + 1);
    const first = row.querySelector("input:not([type=hidden]), select");
    if (first) first.focus();
  }

  // Row menus (<details class="row-menu">): close when an item is chosen or on a click elsewhere.
  function closeMenus(except) {
    document.querySelectorAll("details.row-menu[open]").forEach(function (menu) {
      if (menu !== except) menu.removeAttribute("open");
    });
  }
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") closeMenus(null);
  });

  document.addEventListener("click", function (event) {
    const menu = event.target.closest("details.row-menu");
    closeMenus(menu);
    if (menu && event.target.closest(".menu [role=menuitem]")) menu.removeAttribute("open");
    const adder = event.target.closest("[data-add-row]");
    if (adder) {
      event.preventDefault();
      addRow(adder);
      return;
    }
    const copier = event.target.closest("[data-copy]");
    if (copier && navigator.clipboard) {
      const source = document.getElementById(copier.dataset.copy);
      if (!source) return;
      navigator.clipboard.writeText(source.textContent.replace(/\s+/g, " ").trim()).then(function () {
        const label = copier.textContent;
        copier.textContent = "Copied";
        setTimeout(function () { copier.textContent = label; }, 2000);
      });
    }
  });

  // A new condition row arrived: focus its field select.
  document.addEventListener("htmx:afterSwap", function (event) {
    const target = event.detail && event.detail.target;
    if (target && target.id === "condition-rows" && event.detail.requestConfig &&
        event.detail.requestConfig.verb === "get") {
      const rows = target.querySelectorAll(".condition-row");
      const last = rows[rows.length - 1];
      const select = last && last.querySelector("select");
      if (select) select.focus();
    }
  });

  // The server answers "Add condition" with HX-Trigger: conditions-full at the limit.
  document.addEventListener("conditions-full", function () {
    const note = document.getElementById("conditions-full");
    if (note) note.classList.remove("hidden");
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { reveal(document); });
  } else {
    reveal(document);
  }
})();
