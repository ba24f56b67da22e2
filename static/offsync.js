// Progressive enhancement only: every page works without this file.
// "Copy" buttons next to read-only values (the device token), and select-all checkboxes.
document.querySelectorAll("button.copy[data-copy]").forEach((button) => {
  const field = document.getElementById(button.dataset.copy);
  if (!field || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    await navigator.clipboard.writeText(field.value);
    button.textContent = "Copied";
  });
});
document.querySelectorAll("input[data-select-all]").forEach((all) => {
  all.hidden = false;
  all.addEventListener("change", () => {
    document.querySelectorAll(`input[name="${all.dataset.selectAll}"]`).forEach((box) => {
      box.checked = all.checked;
    });
  });
});
