// Passkeys for idlink pages: logging in with a passkey (a button and
// autofill on the login page) and adding a passkey (settings page).
// The pages work without this script; it only adds what needs WebAuthn.
(function () {
  "use strict";

  function supported() {
    return typeof window.PublicKeyCredential === "function" &&
      !!navigator.credentials && typeof navigator.credentials.get === "function";
  }

  // ---- base64url <-> ArrayBuffer, for browsers without the JSON helpers ----
  function fromB64url(s) {
    s = s.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }
  function toB64url(buf) {
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(json) {
    var pk = json.publicKey;
    if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function") {
      return PublicKeyCredential.parseCreationOptionsFromJSON(pk);
    }
    var o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    o.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    o.excludeCredentials = (pk.excludeCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: fromB64url(c.id) });
    });
    return o;
  }

  function requestOptions(json) {
    var pk = json.publicKey;
    if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function") {
      return PublicKeyCredential.parseRequestOptionsFromJSON(pk);
    }
    var o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    o.allowCredentials = (pk.allowCredentials || []).map(function (c) {
      return Object.assign({}, c, { id: fromB64url(c.id) });
    });
    return o;
  }

  function credentialJSON(cred) {
    if (typeof cred.toJSON === "function") {
      return cred.toJSON();
    }
    var r = cred.response;
    var resp = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      resp.attestationObject = toB64url(r.attestationObject);
      if (typeof r.getTransports === "function") { resp.transports = r.getTransports(); }
    }
    if (r.authenticatorData) {
      resp.authenticatorData = toB64url(r.authenticatorData);
      resp.signature = toB64url(r.signature);
      if (r.userHandle) { resp.userHandle = toB64url(r.userHandle); }
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: resp
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? "{}" : JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) {
          var err = new Error(data.message || "Sorry, there is a problem with the service. Try again later.");
          err.code = data.error || "server_error";
          throw err;
        }
        return data;
      });
    });
  }

  function showError(message) {
    var box = document.getElementById("passkey-error");
    var text = document.getElementById("passkey-error-message");
    if (!box || !text) { return; }
    clearFieldError();
    text.textContent = message;
    box.hidden = false;
    box.focus();
  }

  // showFieldError shows a problem with the passkey's name as every form
  // does: linked from the error summary, and beside the field.
  function showFieldError(message) {
    var box = document.getElementById("passkey-error");
    var text = document.getElementById("passkey-error-message");
    var group = document.getElementById("passkey-name-group");
    var field = document.getElementById("passkey-name");
    var fieldText = document.getElementById("passkey-name-error-text");
    if (!box || !text || !group || !field || !fieldText) { showError(message); return; }
    text.textContent = "";
    var link = document.createElement("a");
    link.href = "#passkey-name";
    link.textContent = message;
    text.appendChild(link);
    fieldText.textContent = message;
    document.getElementById("passkey-name-error").hidden = false;
    group.classList.add("nhsuk-form-group--error");
    field.classList.add("nhsuk-input--error");
    field.setAttribute("aria-describedby", "passkey-name-hint passkey-name-error");
    box.hidden = false;
    box.focus();
  }

  function clearFieldError() {
    var group = document.getElementById("passkey-name-group");
    var field = document.getElementById("passkey-name");
    var msg = document.getElementById("passkey-name-error");
    if (!group || !field || !msg) { return; }
    msg.hidden = true;
    group.classList.remove("nhsuk-form-group--error");
    field.classList.remove("nhsuk-input--error");
    field.setAttribute("aria-describedby", "passkey-name-hint");
  }

  // A cancelled or timed-out browser prompt is not an error worth a message.
  function cancelled(err) {
    return err && (err.name === "NotAllowedError" || err.name === "AbortError");
  }

  // ---- logging in ----
  function setUpLogin(box) {
    var csrf = box.getAttribute("data-csrf");
    var button = document.getElementById("passkey-login-button");
    var conditional = null;

    function login(mediation, signal) {
      return post("/login/passkey/begin", csrf).then(function (json) {
        var opts = { publicKey: requestOptions(json) };
        if (mediation) { opts.mediation = mediation; }
        if (signal) { opts.signal = signal; }
        return navigator.credentials.get(opts);
      }).then(function (cred) {
        if (!cred) { return; }
        return post("/login/passkey/finish", csrf, credentialJSON(cred)).then(function (data) {
          if (data.redirect) { window.location.assign(data.redirect); }
        });
      });
    }

    var unsupported = document.getElementById("passkey-unsupported");
    if (unsupported) { unsupported.hidden = true; }
    box.hidden = false;
    button.addEventListener("click", function () {
      if (conditional) { conditional.abort(); conditional = null; }
      login(null, null).catch(function (err) {
        if (!cancelled(err)) { showError(err.message); }
      });
    });

    if (box.getAttribute("data-conditional") !== "off" &&
        typeof PublicKeyCredential.isConditionalMediationAvailable === "function") {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (ok) {
        if (!ok) { return; }
        conditional = new AbortController();
        login("conditional", conditional.signal).catch(function (err) {
          if (!cancelled(err)) { showError(err.message); }
        });
      });
    }
  }

  // ---- adding a passkey ----
  function setUpAdd(box) {
    var csrf = box.getAttribute("data-csrf");
    var button = document.getElementById("passkey-add-button");
    var name = document.getElementById("passkey-name");
    var unsupported = document.getElementById("passkey-unsupported");
    if (unsupported) { unsupported.hidden = true; }
    box.hidden = false;
    button.addEventListener("click", function () {
      var max = parseInt(name.getAttribute("data-max"), 10) || 64;
      if (Array.from(name.value.trim()).length > max) {
        showFieldError("The name must be " + max + " characters or fewer");
        return;
      }
      button.disabled = true;
      post("/account/passkeys/begin", csrf).then(function (json) {
        return navigator.credentials.create({ publicKey: creationOptions(json) });
      }).then(function (cred) {
        if (!cred) { return; }
        return post("/account/passkeys/finish", csrf, { credential: credentialJSON(cred), name: name.value }).then(function (data) {
          if (data.redirect) { window.location.assign(data.redirect); }
        });
      }).catch(function (err) {
        if (cancelled(err)) {
          showError("No passkey was added. Try again when you are ready.");
        } else if (err && err.name === "InvalidStateError") {
          showError("This device already has a passkey for your account.");
        } else if (err && err.code === "invalid_name") {
          showFieldError(err.message);
        } else {
          showError(err.message);
        }
      }).then(function () { button.disabled = false; });
    });
  }

  function start() {
    var loginBox = document.getElementById("passkey-login");
    var addBox = document.getElementById("passkey-add");
    if (!supported()) {
      return; // the pages say what is needed; everything else works
    }
    if (loginBox) { setUpLogin(loginBox); }
    if (addBox) { setUpAdd(addBox); }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
