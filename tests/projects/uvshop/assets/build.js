// The front-end build: the stylesheet the home page links, made from its source.
const fs = require("fs");
const path = require("path");
const src = fs.readFileSync(path.join(__dirname, "main.css"), "utf8");
const out = path.join(__dirname, "..", "shop", "static", "css", "built.css");
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, "/* uvshop-built-css */\n" + src.replace(/\s+/g, " ").trim() + "\n");
console.log("wrote " + out);
