/* dash-enterprise-auth: when a Dash request answers 401 (the session ended or
   was signed out elsewhere), reload the page so the server sends the viewer to
   sign in, instead of leaving a half-working app. At most one reload per
   10 seconds, so a misconfigured server cannot cause a reload loop. */
(function () {
  var originalFetch = window.fetch;
  if (!originalFetch) { return; }
  window.fetch = function () {
    return originalFetch.apply(this, arguments).then(function (response) {
      if (response.status === 401 && response.url.indexOf("/_dash-") !== -1) {
        var last = Number(window.sessionStorage.getItem("dash-auth-reload") || 0);
        if (Date.now() - last > 10000) {
          window.sessionStorage.setItem("dash-auth-reload", String(Date.now()));
          window.location.reload();
        }
      }
      return response;
    });
  };
})();
