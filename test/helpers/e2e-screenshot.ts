import type { Page, TestInfo } from '@playwright/test';

/** Saves a full-page screenshot into the test's output folder and attaches it to the report. */
export async function attachScreenshot(page: Page, info: TestInfo, name: string): Promise<void> {
  const path = info.outputPath(`${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await info.attach(name, { path, contentType: 'image/png' });
}
