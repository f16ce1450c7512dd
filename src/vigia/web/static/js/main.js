// Sign-in, the sections and the router. Routes live in the URL's fragment (#/jobs/ID):
// it never reaches a server, and it holds no patient data (ids and section names only).

import { ApiError, forget, get, remember, signedIn } from "./api.js";
import { clear, field, h } from "./dom.js";
import * as dlq from "./views/dlq.js";
import * as documents from "./views/documents.js";
import * as job from "./views/job.js";
import * as jobs from "./views/jobs.js";
import * as monitoring from "./views/monitoring.js";
import * as reviews from "./views/reviews.js";
import * as submit from "./views/submit.js";

const ROUTES = [
  [/^#\/jobs\/([0-9a-f]{32})$/, job, "Job"],
  [/^#\/jobs$/, jobs, "Jobs"],
  [/^#\/submit(?:\/([\w.-]+))?$/, submit, "Submit"],
  [/^#\/dlq$/, dlq, "Dead letters"],
  [/^#\/reviews$/, reviews, "Reviews"],
  [/^#\/monitoring$/, monitoring, "Monitoring"],
  [/^#\/documents(?:\/([0-9a-f]{32})(?:\/pages\/(\d+))?)?$/, documents, "Documents"],
];

const main = document.getElementById("main");
const banner = document.getElementById("banner");
let me = null;
let leave = null;
let generation = 0;

export function showError(error) {
  const message = error instanceof ApiError || error instanceof Error ? error.message : String(error);
  banner.hidden = false;
  clear(banner).append(
    h("span", {}, message),
    h("button", { type: "button", class: "quiet", "aria-label": "Dismiss", onclick: () => { banner.hidden = true; } }, "×"),
  );
}

function hideError() {
  banner.hidden = true;
}

function can(permission) {
  return Boolean(me && me.permissions.includes(permission));
}

function signInPage(problem) {
  document.title = "Vigía — sign in";
  const input = h("input", { type: "password", name: "api-key", autocomplete: "off", required: true, spellcheck: "false" });
  const form = h("form", { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in"),
    h("p", {}, "Paste an API key (", h("code", {}, "vigia keys create"), "). It stays in this tab only."),
    field("API key", input, "key-problem"),
    h("button", { type: "submit" }, "Sign in"));
  if (problem) form.querySelector("#key-problem").textContent = problem;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    remember(input.value.trim());
    try {
      me = await get("/me");
      hideError();
      if (!location.hash || location.hash === "#/") history.replaceState(null, "", "#/jobs");
      start();
    } catch (error) {
      forget();
      form.querySelector("#key-problem").textContent = error.status === 401 ? "That key is not valid or has been revoked." : error.message;
      input.focus();
    }
  });
  clear(main).append(form);
  input.focus();
}

function showNav() {
  const nav = document.getElementById("nav");
  nav.hidden = false;
  for (const link of nav.querySelectorAll("a")) {
    link.hidden = Boolean(link.dataset.needs) && !can(link.dataset.needs);
  }
  document.getElementById("who").textContent = `${me.tenant} · ${me.role}`;
  document.getElementById("sign-out").hidden = false;
}

async function route() {
  if (leave) {
    leave();
    leave = null;
  }
  hideError();
  const hash = location.hash || "#/jobs";
  for (const [pattern, view, title] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    document.title = `Vigía — ${title}`;
    for (const link of document.querySelectorAll("#nav a")) {
      const current = hash.startsWith(link.getAttribute("href"));
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    // Each visit draws into its own container: a slower earlier visit that finishes late
    // draws into a detached one, and its live updates are stopped at once.
    const mine = ++generation;
    const container = h("div", {});
    clear(main).append(container);
    let stop = null;
    try {
      stop = (await view.render(container, { me, can, params: match.slice(1), showError })) || null;
    } catch (error) {
      container.append(h("div", { class: "card error" }, h("h1", {}, "This page could not be shown"), h("p", {}, error.message || String(error))));
    }
    if (mine !== generation) {
      if (stop) stop();
      return;
    }
    leave = stop;
    main.focus({ preventScroll: true });
    return;
  }
  location.hash = "#/jobs";
}

function start() {
  showNav();
  route();
}

window.addEventListener("hashchange", () => {
  if (me) route();
});
window.addEventListener("vigia:unauthenticated", () => {
  if (!me) return; // signing in: the form says why
  forget();
  me = null;
  if (leave) leave();
  leave = null;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  signInPage("The key is no longer accepted: sign in again.");
});
document.getElementById("sign-out").addEventListener("click", () => {
  forget();
  location.reload();
});

(async () => {
  if (!signedIn()) return signInPage();
  try {
    me = await get("/me");
    start();
  } catch (error) {
    if (error.status === 401) return signInPage("The key is no longer accepted: sign in again.");
    showError(error);
  }
})();
