// Progressive enhancement only: every form works without this file.
// A form marked data-inline="ID" shows the element #ID of the answer in place (the Test
// result) instead of loading the whole page, when submitted by a button marked data-inline;
// a button's own data-inline="ID" names another element (the filters' Preview).
document.addEventListener("submit", async (event) => {
  const form = event.target;
  const button = event.submitter;
  if (!button || !button.hasAttribute("data-inline")) return;
  const target = button.dataset.inline || form.dataset.inline;
  if (!target) return;
  event.preventDefault();
  const region = document.getElementById(target);
  // Read the form before disabling the button: a disabled submitter is left out.
  const body = new FormData(form, button);
  button.disabled = true;
  region.setAttribute("aria-busy", "true");
  try {
    // form.action would be the button named "action": read the attribute.
    const answer = await fetch(form.getAttribute("action"), { method: "POST", body, credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.getElementById(target) || page.querySelector("main") || page.body;
    region.replaceChildren(...fresh.childNodes);
  } catch (e) {
    region.textContent = "The request did not complete: " + e.message;
  } finally {
    region.removeAttribute("aria-busy");
    button.disabled = false;
  }
});
