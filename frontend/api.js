// The API reference: Swagger UI (shipped with the console, from the npm registry) rendering the
// live /openapi.json. "Try it out" sends the console's key on the routes that need one.
"use strict";

async function start() {
  const line = document.getElementById("reference-line");
  let config;
  try {
    config = await Console.loadConfig();
  } catch (error) {
    line.textContent = error.message;
    return;
  }
  const url = `${config.api_url}/openapi.json`;
  let spec;
  try {
    spec = await Console.getJson("/openapi.json");
  } catch (error) {
    line.textContent = `The API's document could not be read: ${error.message}`;
    return;
  }
  // the document names no server (it is the same behind any stage): calls go to the API's URL
  spec.servers = [{ url: config.api_url }];
  // Swagger UI leaves its server select unnamed and its code blocks (which scroll) out of the
  // keyboard's reach, and draws both anew: mended whenever they appear
  const reference = document.getElementById("reference");
  new MutationObserver(() => {
    const servers = document.getElementById("servers");
    if (servers && !servers.hasAttribute("aria-label")) servers.setAttribute("aria-label", "Server");
    for (const block of reference.querySelectorAll("pre:not([tabindex])")) block.setAttribute("tabindex", "0");
  }).observe(reference, { childList: true, subtree: true });
  SwaggerUIBundle({
    spec,
    domNode: reference,
    deepLinking: false,  // its links sit inside each route's summary button: nested controls
    tryItOutEnabled: false,
    // the key from config.json: the same one the prediction form sends
    requestInterceptor: (request) => {
      if (config.api_key) request.headers["x-api-key"] = config.api_key;
      return request;
    },
    onComplete: () => {
      line.textContent = `The API's own document, ${url}. "Try it out" calls the API` +
        (config.api_key ? " with the console's key." : " (no key is configured: keyed routes answer 403).");
    },
  });
}

start();
