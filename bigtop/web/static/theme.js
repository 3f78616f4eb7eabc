// Runs before the page is drawn, so a chosen theme shows without a flash.
// "auto" (the default) follows the system's light or dark preference.
(function () {
  var chosen = null;
  try { chosen = localStorage.getItem("bigtop-theme"); } catch (e) { /* private mode */ }
  if (chosen === "light" || chosen === "dark") {
    document.documentElement.setAttribute("data-theme", chosen);
  }
})();
