/** The admin page's element lookup: an element of admin.html by id, or an error naming the one that is missing. */
export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`admin page: element #${id} is missing from admin.html`);
  return el as T;
};
