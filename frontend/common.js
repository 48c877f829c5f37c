// What every page of the console shares: its config (config.json: api_url, api_key and auth,
// written where the console is served), the API's routes and the signed-in user.
"use strict";

const Console = {
  config: null,

  async loadConfig() {
    if (Console.config) return Console.config;
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error("config.json is missing: deploy the stack (make demo) to write it.");
    Console.config = await response.json();
    return Console.config;
  },

  async getJson(path, options = {}) {
    return Console.request(path, { ...options, method: "GET" });
  },

  async postJson(path, body, options = {}) {
    return Console.request(path, { ...options, method: "POST", body });
  },

  // a route of the API; signedIn: with the user's ID token (the batch routes)
  async request(path, { method, body, signedIn }) {
    const config = await Console.loadConfig();
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (signedIn) headers.Authorization = `Bearer ${(Console.session() || {}).idToken}`;
    const response = await fetch(`${config.api_url}${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let answer = null;
    try {
      answer = await response.json();
    } catch (error) {
      throw new Error(`the API answered ${response.status} without JSON`);
    }
    if (!response.ok) {
      const failure = new Error(answer.error || answer.message || `the API answered ${response.status}`);
      failure.status = response.status;
      throw failure;
    }
    return answer;
  },

  // ---- sign-in: Cognito's USER_PASSWORD_AUTH (the user pool's API, or the local issuer's), the
  // ID token kept for this tab only (sessionStorage) until it expires
  SESSION_KEY: "console-session",

  async signIn(username, password) {
    const { auth } = await Console.loadConfig();
    const response = await fetch(auth.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth" },
      body: JSON.stringify({ AuthFlow: "USER_PASSWORD_AUTH", ClientId: auth.client_id,
        AuthParameters: { USERNAME: username, PASSWORD: password } }),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok || !answer.AuthenticationResult) {
      throw new Error(answer.message || answer.__type || `the user pool answered ${response.status}`);
    }
    const result = answer.AuthenticationResult;
    const session = { user: username, idToken: result.IdToken,
      expires: Date.now() + 1000 * (result.ExpiresIn || 3600) };
    sessionStorage.setItem(Console.SESSION_KEY, JSON.stringify(session));
    return session;
  },

  session() {
    try {
      const session = JSON.parse(sessionStorage.getItem(Console.SESSION_KEY));
      return session && session.expires > Date.now() + 30000 ? session : null;
    } catch (error) {
      return null;
    }
  },

  signOut() {
    sessionStorage.removeItem(Console.SESSION_KEY);
  },

  // "0.9734" for a share, "12.3" for a larger number, "—" for none
  number(value, digits = 4) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    return Math.abs(value) >= 100 ? value.toFixed(1) : Number(value.toPrecision(digits)).toString();
  },

  when(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
  },

  element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  },

  // a table with a caption and header cells that name their column, in a region that scrolls
  // sideways on a narrow screen and that the keyboard can reach (to scroll it with the arrows)
  table(caption, headers, rows) {
    const { element } = Console;
    const head = element("tr", {}, ...headers.map((h) => element("th", { scope: "col", text: h })));
    const body = rows.map((cells) => element("tr", {}, ...cells.map((cell, i) =>
      i === 0 ? element("th", { scope: "row" }, cell) : element("td", {}, cell))));
    return element("div", { class: "scroll", role: "region", "aria-label": caption, tabindex: "0" },
      element("table", {}, element("caption", { text: caption }), element("thead", {}, head),
        element("tbody", {}, ...body)));
  },
};
