/** A Dyn task, in the gateway's unified shape. */
export interface UnifiedTask {
  id: string;
  name?: string;
  zone?: string;
  customer?: string;
  status?: string;
  stepCount?: number;
  totalSteps?: number;
  blocking?: boolean;
  message?: string;
  createdAt?: string;
  modifiedAt?: string;
}
