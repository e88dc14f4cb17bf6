/* dash-enterprise-auth: when the viewer's session ends (signed out in another tab,
   revoked, expired), take the page to sign-in instead of leaving a half-working app.

   Over HTTP, a Dash request then answers 401: the page reloads and the server sends
   it to sign in. Over a WebSocket (FastAPI and Quart backends), the server closes the
   socket; Dash's SharedWorker tells the page "disconnected", and the page asks the
   server whether it is still signed in (a 401 reloads it as above). At most one
   reload per 10 seconds, so a misconfigured server cannot cause a reload loop. */
(function () {
  var script = document.currentScript;
  var probeUrl = script ? script.src.replace(/_dash-auth\/static\/session\.js.*$/, "_dash-layout") : null;
  var originalFetch = window.fetch;
  if (!originalFetch) { return; }

  function reloadIntoSignIn() {
    var last = Number(window.sessionStorage.getItem("dash-auth-reload") || 0);
    if (Date.now() - last > 10000) {
      window.sessionStorage.setItem("dash-auth-reload", String(Date.now()));
      window.location.reload();
    }
  }

  window.fetch = function () {
    return originalFetch.apply(this, arguments).then(function (response) {
      if (response.status === 401 && response.url.indexOf("/_dash-") !== -1) {
        reloadIntoSignIn();
      }
      return response;
    });
  };

  var OriginalSharedWorker = window.SharedWorker;
  if (!OriginalSharedWorker || !probeUrl) { return; }
  function WatchedSharedWorker(url, options) {
    var worker = new OriginalSharedWorker(url, options);
    worker.port.addEventListener("message", function (event) {
      var message = event.data;
      if (message && message.type === "disconnected") {
        window.fetch(probeUrl, { credentials: "same-origin", cache: "no-store" }).catch(function () {});
      }
    });
    return worker;
  }
  WatchedSharedWorker.prototype = OriginalSharedWorker.prototype;
  window.SharedWorker = WatchedSharedWorker;
})();
