// Recording the face video in the page: where the browser has a camera,
// MediaRecorder and DataTransfer, the person can record the video here
// (stopped before the page's maximum length) and the recording is put into
// the video file input, so the form sends it like a chosen file. Without
// this script, or when the camera cannot be used, the file input works on
// its own (phones offer their camera app for it).
(function () {
  "use strict";
  var input = document.getElementById("video");
  var box = document.getElementById("video-recorder");
  var md = navigator.mediaDevices;
  if (!input || !box || typeof window.MediaRecorder !== "function" || !md ||
      typeof md.getUserMedia !== "function" || typeof window.DataTransfer !== "function") { return; }
  var type = ["video/mp4", "video/webm;codecs=vp8", "video/webm"].filter(function (t) {
    return MediaRecorder.isTypeSupported(t);
  })[0];
  if (!type) { return; }
  try {
    var probe = new DataTransfer();
    probe.items.add(new File(["x"], "x.txt", { type: "text/plain" }));
  } catch (e) { return; }

  var minSeconds = parseInt(input.getAttribute("data-min-seconds"), 10) || 2;
  var maxSeconds = parseInt(input.getAttribute("data-max-seconds"), 10) || 30;
  var preview = document.getElementById("video-preview");
  var status = document.getElementById("video-status");
  var start = document.getElementById("video-record");
  var stop = document.getElementById("video-stop");
  var stream = null, recorder = null, chunks = [], timer = null, began = 0, shown = -1;

  function say(text) { status.textContent = text; }
  function elapsed() { return (Date.now() - began) / 1000; }
  function release() {
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    preview.srcObject = null;
  }
  function finish() {
    if (timer) { clearInterval(timer); timer = null; }
    if (recorder && recorder.state !== "inactive") { recorder.stop(); }
  }
  function ready() {
    stop.hidden = true;
    start.hidden = false;
    start.disabled = false;
  }

  box.hidden = false;
  start.addEventListener("click", function () {
    start.disabled = true;
    md.getUserMedia({ video: { facingMode: "user" }, audio: false }).then(function (s) {
      stream = s;
      preview.srcObject = s;
      var playing = preview.play();
      if (playing && typeof playing.catch === "function") { playing.catch(function () {}); }
      chunks = [];
      recorder = new MediaRecorder(s, { mimeType: type });
      recorder.ondataavailable = function (ev) { if (ev.data && ev.data.size) { chunks.push(ev.data); } };
      recorder.onstop = function () {
        var seconds = elapsed();
        release();
        ready();
        start.textContent = "Record again";
        if (seconds < minSeconds) {
          say("The video must be at least " + minSeconds + " seconds long. Record again.");
          return;
        }
        var base = type.split(";")[0];
        var file = new File(chunks, "face-video." + (base === "video/mp4" ? "mp4" : "webm"), { type: base });
        var dt = new DataTransfer();
        dt.items.add(file);
        input.files = dt.files;
        say("Your video is ready to send (" + Math.round(seconds) + " seconds).");
      };
      recorder.start(1000);
      began = Date.now();
      shown = -1;
      start.hidden = true;
      stop.hidden = false;
      stop.focus();
      timer = setInterval(function () {
        var s = elapsed();
        // Stop a second early: the file's length must not pass the limit.
        if (s >= maxSeconds - 1) { finish(); return; }
        if (Math.floor(s) !== shown) {
          shown = Math.floor(s);
          say("Recording: " + shown + " of at most " + (maxSeconds - 1) + " seconds");
        }
      }, 250);
    }).catch(function () {
      // No camera, or not allowed: the file input is still there.
      release();
      ready();
      box.hidden = true;
    });
  });
  stop.addEventListener("click", finish);
})();
