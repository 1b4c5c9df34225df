// MDM connection admin: show only the credential fieldset of the chosen provider.
// Without JavaScript every fieldset stays visible and says which provider it is for.
(function () {
  "use strict";
  function sync() {
    const select = document.getElementById("id_provider");
    if (!select) return;
    document.querySelectorAll("fieldset.mdm-credentials").forEach(function (fieldset) {
      fieldset.classList.toggle("mdm-hidden", !fieldset.classList.contains("mdm-provider-" + select.value));
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    sync();
    const select = document.getElementById("id_provider");
    if (select) select.addEventListener("change", sync);
  });
})();
