import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router, type NextFunction, type Request, type Response } from 'express';
import { buildOpenApiDocument, type OpenApiDocument } from './document.js';

const require = createRequire(import.meta.url);
/** swagger-ui-dist as installed: the API reference is served from the package, never from a CDN. */
const SWAGGER_UI_DIR = dirname(require.resolve('swagger-ui-dist/package.json'));
const HERE = dirname(fileURLToPath(import.meta.url));

/** The only files under /api/docs/assets/: the renderer's bundle and style, and the script that points it at the document. */
const ASSETS: Record<string, string> = {
  'swagger-ui-bundle.js': join(SWAGGER_UI_DIR, 'swagger-ui-bundle.js'),
  'swagger-ui.css': join(SWAGGER_UI_DIR, 'swagger-ui.css'),
  'favicon-32x32.png': join(SWAGGER_UI_DIR, 'favicon-32x32.png'),
  'docs-init.js': join(HERE, 'docs-init.js'),
};

/**
 * Swagger UI sets styles from script and shows its icons as data: URLs; everything else is this
 * origin's. No framing by other sites.
 */
const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fulfillment hub API reference</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png">
</head>
<body>
<main id="swagger-ui"><noscript>The reference needs JavaScript; the document itself is at <a href="/api/openapi.json">/api/openapi.json</a>.</noscript></main>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/assets/docs-init.js"></script>
</body>
</html>
`;

/** `GET /api/openapi.json` and `GET /api/docs` (SPEC §11): no key needed, mounted before authentication. */
/** Built on first request and kept: it depends only on the code, never on configuration or data. */
let document: OpenApiDocument | undefined;

export function openApiRoutes(): Router {
  const router = Router();

  router.get('/api/openapi.json', (_req, res) => {
    document ??= buildOpenApiDocument();
    res.setHeader('cache-control', 'no-cache');
    res.json(document);
  });

  router.get('/api/docs', (_req, res) => {
    res.setHeader('content-security-policy', DOCS_CSP);
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    res.type('html').send(DOCS_PAGE);
  });

  router.use('/api/docs/assets', (req: Request, res: Response, next: NextFunction) => {
    const file = Object.hasOwn(ASSETS, req.path.slice(1)) ? ASSETS[req.path.slice(1)] : undefined;
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) return next();
    res.setHeader('x-content-type-options', 'nosniff');
    res.sendFile(file, { maxAge: '1h' }, (err) => err && next(err));
  });

  return router;
}
