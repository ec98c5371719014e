// Tollgate's link pages: read the link's token from the URL, take it out of the address bar and
// history (and of any Referer), and post it only when the person presses the button — so a mail
// scanner that fetches the link spends nothing. Access tokens stay in this page's memory; the
// refresh token is an HttpOnly cookie the API sets.
"use strict";
(function () {
  const form = document.querySelector("form[data-action]");
  if (!form) return;
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token") || "";
  if (token) {
    history.replaceState(null, "", window.location.pathname);
  }
  const status = document.querySelector(".status");
  const button = form.querySelector("button");
  const say = (text, kind) => {
    status.textContent = text;
    status.className = "status " + (kind || "");
  };
  if (!token) {
    say("This link has no token. Open the link from the mail again.", "error");
    button.disabled = true;
    return;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    say("Working…");
    const body = { token: token };
    const password = form.querySelector("input[name=password]");
    if (password) body.password = password.value;
    try {
      const res = await fetch(form.dataset.action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "application/json" },
        credentials: "same-origin",
        body: JSON.stringify(body),
      });
      if (res.ok) {
        say(form.dataset.done, "ok");
        form.querySelectorAll("input").forEach((i) => (i.disabled = true));
        return;
      }
      let detail = "Something went wrong (" + res.status + ").";
      try {
        const problem = await res.json();
        if (problem.errors && problem.errors.length) {
          detail = problem.errors.map((e) => e.message).join(" ");
        } else if (problem.detail) {
          detail = problem.detail;
        }
      } catch (_) { /* not JSON */ }
      say(detail, "error");
      button.disabled = false;
    } catch (_) {
      say("The server could not be reached. Try again.", "error");
      button.disabled = false;
    }
  });
})();
