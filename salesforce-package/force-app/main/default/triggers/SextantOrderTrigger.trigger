trigger SextantOrderTrigger on Order(after insert, after update, after delete, after undelete) {
    SextantChangeHandler.run(Order.SObjectType, Trigger.operationType, Trigger.new, Trigger.oldMap);
}
