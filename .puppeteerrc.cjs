/** whatsapp-web.js pulls in puppeteer; Parley uses the system Chromium (CHROMIUM_PATH), never a downloaded one. */
module.exports = { skipDownload: true };
