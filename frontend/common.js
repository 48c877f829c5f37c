// What every page of the console shares: its config (config.json: api_url, api_key, written
// where the console is served) and the API's open routes.
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

  async getJson(path) {
    const config = await Console.loadConfig();
    const response = await fetch(`${config.api_url}${path}`);
    let body = null;
    try {
      body = await response.json();
    } catch (error) {
      throw new Error(`the API answered ${response.status} without JSON`);
    }
    if (!response.ok) throw new Error(body.error || body.message || `the API answered ${response.status}`);
    return body;
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
