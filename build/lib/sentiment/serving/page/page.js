// The page at /: classify the review in the box with the server's V1 API and highlight the words that moved it.
// No build step and no libraries: the server sends this file as it is.
"use strict";

const MODEL = new URLSearchParams(location.search).get("model") || "sentiment";
const REASONS = 3; // reasons each way

function element(id) {
  return document.getElementById(id);
}

// The review's standardized tokens, as the server's tokenizer makes them: lower case, letters and digits.
function normalize(word) {
  return word.toLowerCase().replace(/[^\p{L}\p{N}]/gu, "");
}

// Split text into words (with their positions) and the text between them.
function words(text) {
  return Array.from(text.matchAll(/[\p{L}\p{N}'’]+/gu), (m) => ({ start: m.index, end: m.index + m[0].length, token: normalize(m[0]) }));
}

// Mark every occurrence of each reason's phrase (one or two words) in the review, by the side it pushes towards.
function highlight(text, reasons) {
  const found = words(text);
  const marks = [];
  for (const side of ["positive", "negative"]) {
    for (const reason of reasons[side]) {
      const phrase = reason.phrase.split(" ");
      for (let i = 0; i + phrase.length <= found.length; i++) {
        if (phrase.every((token, j) => found[i + j].token === token)) {
          marks.push({ start: found[i].start, end: found[i + phrase.length - 1].end, side, weight: reason.weight });
        }
      }
    }
  }
  marks.sort((a, b) => a.start - b.start);
  const out = element("highlighted");
  out.replaceChildren();
  let at = 0;
  for (const mark of marks) {
    if (mark.start < at) continue;
    out.append(text.slice(at, mark.start));
    const node = document.createElement("mark");
    node.className = mark.side;
    node.title = `${mark.weight > 0 ? "+" : ""}${mark.weight.toFixed(2)} on the logit`;
    node.textContent = text.slice(mark.start, mark.end);
    out.append(node);
    at = mark.end;
  }
  out.append(text.slice(at));
  element("cut").textContent = reasons.cut ? `Explained in part: ${reasons.cut}.` : "";
}

function showError(message) {
  element("result").hidden = true;
  element("error").textContent = message;
  element("error").hidden = false;
}

async function classify(text) {
  element("share").href = `/?text=${encodeURIComponent(text)}${MODEL === "sentiment" ? "" : `&model=${encodeURIComponent(MODEL)}`}`;
  let response;
  try {
    response = await fetch(`/v1/models/${encodeURIComponent(MODEL)}:predict`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ instances: [text], explain: REASONS }),
    });
  } catch (e) {
    showError(`The server did not answer: ${e.message}`);
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    showError(body.error || `The server answered ${response.status}`);
    return;
  }
  const prediction = body.predictions[0];
  element("error").hidden = true;
  element("label").textContent = prediction.label;
  element("label").className = prediction.label;
  element("probability").textContent = `P(positive) = ${prediction.probability.toFixed(3)}`;
  highlight(text, prediction.reasons);
  element("result").hidden = false;
}

element("form").addEventListener("submit", (event) => {
  event.preventDefault();
  classify(element("review").value);
});

const shared = new URLSearchParams(location.search).get("text");
if (shared) {
  element("review").value = shared;
  classify(shared);
}
