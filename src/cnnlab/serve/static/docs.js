// The OpenAPI page: Swagger UI from this server, reading this server's schema.
window.ui = SwaggerUIBundle({ url: "openapi.json", dom_id: "#swagger-ui", deepLinking: true });
