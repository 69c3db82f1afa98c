// Waiting for a phone approval: the page learns the outcome from
// server-sent events and submits its "Check again" form, so the person
// does not have to. Without this script, the button does the same.
//
// Once the person submits another form of the page ("Send me a security
// code instead"), the page is leaving: the stream is closed and nothing is
// submitted for them any more. (Cancelling closes the request, and the
// stream reports it closed; submitting "Check again" then would race the
// person's own choice.)
(function () {
  "use strict";
  var form = document.getElementById("approval-check");
  if (!form || typeof window.EventSource !== "function") { return; }
  var status = document.getElementById("approval-status");
  var done = false;
  var es = new EventSource(form.getAttribute("data-events"));
  function stop() {
    done = true;
    es.close();
  }
  Array.prototype.forEach.call(document.querySelectorAll("form"), function (other) {
    if (other !== form) { other.addEventListener("submit", stop); }
  });
  window.addEventListener("pagehide", stop);
  es.addEventListener("closed", function () {
    if (done) { return; }
    stop();
    if (status) { status.textContent = "Your phone has answered."; }
    form.submit();
  });
})();
