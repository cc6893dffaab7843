// Quick exit, progressively enhanced: Escape leaves at once, and the page is replaced in history so Back does not
// return to it. Without JavaScript the red link does the same (the server clears the session and cookies).
(function () {
  var link = document.getElementById("quick-exit");
  if (!link) { return; }
  function leave(event) {
    if (event) { event.preventDefault(); }
    window.location.replace(link.href);
  }
  link.addEventListener("click", leave);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { leave(event); }
  });
}());
