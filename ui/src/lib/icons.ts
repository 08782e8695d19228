// The app's icon set: Lucide's SVG icons (ISC), bundled; import them from here so the set
// stays one list. Each is a Svelte component rendering an inline <svg> (no font, no emoji:
// nothing depends on the fonts a machine has). Decorative by default: give the button an
// aria-label, not the icon.
export { default as IconArchive } from '@lucide/svelte/icons/archive';
export { default as IconArchiveRestore } from '@lucide/svelte/icons/archive-restore';
export { default as IconArrowUp } from '@lucide/svelte/icons/arrow-up';
export { default as IconBrain } from '@lucide/svelte/icons/brain';
export { default as IconCheck } from '@lucide/svelte/icons/check';
export { default as IconChevronDown } from '@lucide/svelte/icons/chevron-down';
export { default as IconChevronLeft } from '@lucide/svelte/icons/chevron-left';
export { default as IconChevronRight } from '@lucide/svelte/icons/chevron-right';
export { default as IconCopy } from '@lucide/svelte/icons/copy';
export { default as IconDownload } from '@lucide/svelte/icons/download';
export { default as IconEllipsis } from '@lucide/svelte/icons/ellipsis';
export { default as IconEye } from '@lucide/svelte/icons/eye';
export { default as IconImage } from '@lucide/svelte/icons/image';
export { default as IconKeyboard } from '@lucide/svelte/icons/keyboard';
export { default as IconLogOut } from '@lucide/svelte/icons/log-out';
export { default as IconMenu } from '@lucide/svelte/icons/menu';
export { default as IconMessageSquare } from '@lucide/svelte/icons/message-square';
export { default as IconPanelLeft } from '@lucide/svelte/icons/panel-left';
export { default as IconPaperclip } from '@lucide/svelte/icons/paperclip';
export { default as IconPencil } from '@lucide/svelte/icons/pencil';
export { default as IconPin } from '@lucide/svelte/icons/pin';
export { default as IconPinOff } from '@lucide/svelte/icons/pin-off';
export { default as IconPlus } from '@lucide/svelte/icons/plus';
export { default as IconRefresh } from '@lucide/svelte/icons/refresh-cw';
export { default as IconSearch } from '@lucide/svelte/icons/search';
export { default as IconSettings } from '@lucide/svelte/icons/settings';
export { default as IconShield } from '@lucide/svelte/icons/shield';
export { default as IconSlidersHorizontal } from '@lucide/svelte/icons/sliders-horizontal';
export { default as IconSquare } from '@lucide/svelte/icons/square';
export { default as IconTrash } from '@lucide/svelte/icons/trash-2';
export { default as IconUpload } from '@lucide/svelte/icons/upload';
export { default as IconX } from '@lucide/svelte/icons/x';
