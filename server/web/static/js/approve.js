// Waiting for a phone approval: the page learns the outcome from
// server-sent events and submits its "Check again" form, so the person
// does not have to. Without this script, the button does the same.
(function () {
  "use strict";
  var form = document.getElementById("approval-check");
  if (!form || typeof window.EventSource !== "function") { return; }
  var status = document.getElementById("approval-status");
  var done = false;
  var es = new EventSource(form.getAttribute("data-events"));
  es.addEventListener("closed", function () {
    if (done) { return; }
    done = true;
    es.close();
    if (status) { status.textContent = "Your phone has answered."; }
    form.submit();
  });
})();
