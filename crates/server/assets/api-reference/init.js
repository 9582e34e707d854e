// Renders /openapi.json with the vendored Swagger UI (no CDN, no inline
// script: the page's Content-Security-Policy allows only 'self').
// Credentials typed into "Authorize" stay in this page's memory.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    validatorUrl: null,
    tryItOutEnabled: false,
  });
});
