// filecheck.js reports a file of the wrong type as soon as it is chosen,
// beside its field, rather than after the (large) upload. The server
// checks every file's content again: this is only a courtesy.
(function () {
  "use strict";

  function allowed(input, file) {
    var types = (input.getAttribute("accept") || "").split(",");
    if (file.type && types.indexOf(file.type) >= 0) { return true; }
    var dot = file.name.lastIndexOf(".");
    var ext = dot >= 0 ? file.name.slice(dot + 1).toLowerCase() : "";
    // Some systems give no type (HEIC, say): the extension decides.
    return !file.type && (input.getAttribute("data-extensions") || "").split(",").indexOf(ext) >= 0;
  }

  function show(input, message) {
    var group = input.parentNode;
    var id = input.id + "-error";
    var span = document.getElementById(id);
    if (!message) {
      if (span && span.getAttribute("data-client")) {
        span.parentNode.removeChild(span);
        group.classList.remove("nhsuk-form-group--error");
        input.setAttribute("aria-describedby", input.id + "-hint");
      }
      return;
    }
    if (!span) {
      span = document.createElement("span");
      span.className = "nhsuk-error-message";
      span.id = id;
      span.setAttribute("data-client", "1");
      group.insertBefore(span, input);
    }
    span.textContent = "";
    var hidden = document.createElement("span");
    hidden.className = "nhsuk-u-visually-hidden";
    hidden.textContent = "Error: ";
    span.appendChild(hidden);
    span.appendChild(document.createTextNode(message));
    group.classList.add("nhsuk-form-group--error");
    input.setAttribute("aria-describedby", input.id + "-hint " + id);
  }

  function watch(input) {
    input.addEventListener("change", function () {
      var bad = Array.prototype.some.call(input.files || [], function (f) { return !allowed(input, f); });
      show(input, bad ? input.getAttribute("data-type-error") : "");
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("input[type=file][data-type-error]"), watch);
}());
